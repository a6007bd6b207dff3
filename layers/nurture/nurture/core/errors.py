"""Typed errors. The API maps them to HTTP responses in exactly one place."""

from __future__ import annotations


class NurtureError(Exception):
    """Base of every error the product raises on purpose."""

    status = 500
    code = "InternalError"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_body(self) -> dict:
        body: dict = {"success": False, "code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class BadRequestError(NurtureError):
    status = 400
    code = "BadRequest"


class ValidationError(NurtureError):
    """A field is missing or has the wrong shape; `field` names it."""

    status = 400
    code = "ValidationError"


class UnprocessableError(NurtureError):
    """Well-formed input that cannot be acted on (e.g. a form without an email)."""

    status = 422
    code = "Unprocessable"


class AuthenticationError(NurtureError):
    status = 401
    code = "Unauthorized"


class ForbiddenError(NurtureError):
    """Authenticated, but not allowed from here (e.g. a web page whose origin the source does not list)."""

    status = 403
    code = "Forbidden"


class NotFoundError(NurtureError):
    status = 404
    code = "NotFound"


class PayloadTooLargeError(NurtureError):
    status = 413
    code = "PayloadTooLarge"


class UnsupportedMediaTypeError(NurtureError):
    status = 415
    code = "UnsupportedMediaType"


class ConfigError(NurtureError):
    """Configuration is invalid: names the file, the path inside it and the problem."""

    def __init__(self, file: str, path: str, reason: str) -> None:
        super().__init__(f"{file}: {path or '<root>'}: {reason}", field=path)
        self.file = file
        self.path = path
        self.reason = reason


class ConcurrentUpdateError(NurtureError):
    """A conditional write lost against a concurrent writer of the same lead."""

    code = "ConcurrentUpdate"


class DeliveryInProgressError(NurtureError):
    """Another invocation holds the claim on this delivery and its lease has
    not lapsed: the caller's retry comes back later, when the delivery is done
    or its lease has lapsed and the claim may be taken over."""

    status = 409
    code = "DeliveryInProgress"


class SettingsError(NurtureError):
    code = "SettingsError"
