"""Domain errors, mapped to HTTP in one place (maxportal/api.py)."""


class DomainError(Exception):
    """A request that is well-formed but not allowed now. ``status`` is the HTTP answer."""

    status = 400
    code = "domain_error"

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details


class NotAllowed(DomainError):
    """The move is not allowed in the current state (answered 409 with the allowed moves)."""

    status = 409
    code = "conflict"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class NotFound(DomainError):
    status = 404
    code = "not_found"
