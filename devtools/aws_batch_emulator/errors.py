"""The one error shape the emulated Batch job APIs raise: AWS's `ClientException` (HTTP 400)."""

from __future__ import annotations


class BatchClientError(Exception):
    """A request AWS Batch would reject with `ClientException`."""

    code = "ClientException"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
