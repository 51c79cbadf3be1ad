"""`aws-array-plugin demo`: the emulated AWS, the plugin service and a propeller-like client in one process,
running real flytekit tasks (`workflows`) end to end. Job commands run on the host (see the emulator)."""
