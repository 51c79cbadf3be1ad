"""The protocol faces: one small adapter per scheduler API over the same core."""
