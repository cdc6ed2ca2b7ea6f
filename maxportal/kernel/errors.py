"""Domain errors: what went wrong, as a stable ``code`` and a message that says what to do.

They carry no HTTP status: the API root maps each class to one (``maxportal/api.py``); pages,
the admin and commands show the message. Errors of outside systems (Proxmox, the executors) are
not domain errors: they live with their integration and are turned into step outcomes there.
"""


class DomainError(Exception):
    """A request that is well-formed but not allowed now."""

    code = "domain_error"

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details


class NotAllowed(DomainError):
    """The move is not allowed in the current state (the details say what is allowed)."""

    code = "conflict"


class NotAuthenticated(DomainError):
    """No credential, or one that is not (or no longer) valid: the caller must authenticate again."""

    code = "not_authenticated"


class Forbidden(DomainError):
    code = "forbidden"


class NotFound(DomainError):
    code = "not_found"


class ReasonRequired(DomainError):
    """A move that loses a fact someone relied on needs a written reason (checklist and leads alike)."""

    code = "reason_required"

    def __init__(self, message: str, **details):
        super().__init__(message, field="reason", **details)


class Unavailable(DomainError):
    """Something the portal depends on cannot take the request now; retry later."""

    code = "unavailable"


class RateLimited(DomainError):
    """Over the per-token request budget; ``details['retry_after']`` says when to come back."""

    code = "rate_limited"
