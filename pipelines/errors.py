"""Parley's error hierarchy: one root, one class per way things fail."""

from __future__ import annotations


class ParleyError(Exception):
    """Root of every error Parley raises on purpose."""

    code = "internal_error"


class ProtocolViolation(ParleyError):
    """Raised when a client message breaks the wire protocol; ``close_code`` set when it must end the session."""

    def __init__(self, code: str, reason: str, close_code: int | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.close_code = close_code


class CapacityError(ParleyError):
    """Raised when the server already serves ``max_sessions`` calls."""

    code = "capacity"


class ModelError(ParleyError):
    """Raised when a model call fails; ``retryable`` says whether trying again may help."""

    code = "model_error"

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ModelTimeout(ModelError):
    """Raised when a model call exceeds ``stage_timeout_s``."""

    code = "model_timeout"

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)
