"""The API root: one NinjaAPI at /api/v1/ with a router per app.

The one place where errors become HTTP: ``ERROR_STATUS`` maps each domain error class to its
status, and ``error_status_and_body`` builds the one error body (``{"error", "detail", ...}``).
Every exception handler below and the kernel's idempotency (which stores refusals) use it.
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.db import DataError
from ninja import NinjaAPI

from eidolons.api import router as agents_router
from leads.api import router as leads_router
from maxportal.kernel.errors import (
    DomainError,
    Forbidden,
    NotAllowed,
    NotFound,
    RateLimited,
    ReasonRequired,
    Unavailable,
)

api = NinjaAPI(
    title="maxportal API",
    version="1",
    description="The MAX Pipeline's API: leads, handoffs, signals and agent health for the Eidolons' CLI agents.",
    urls_namespace="api",
)

# Most specific first: the first class an error is an instance of decides its status.
ERROR_STATUS: list[tuple[type[DomainError], int]] = [
    (RateLimited, 429),
    (ReasonRequired, 422),
    (NotAllowed, 409),
    (Forbidden, 403),
    (NotFound, 404),
    (Unavailable, 503),
    (DomainError, 400),
]


def error_body(code: str, detail: str, **extra) -> dict:
    """The API's one error shape."""
    return {"error": code, "detail": detail, **extra}


def error_status_and_body(exc: DomainError) -> tuple[int, dict]:
    status = next(status for cls, status in ERROR_STATUS if isinstance(exc, cls))
    return status, error_body(exc.code, exc.message, **exc.details)


@api.exception_handler(DomainError)
def domain_error(request, exc: DomainError):
    status, body = error_status_and_body(exc)
    response = api.create_response(request, body, status=status)
    if isinstance(exc, RateLimited):
        response["Retry-After"] = str(exc.details["retry_after"])
    return response


@api.exception_handler(ValidationError)
def validation_error(request, exc: ValidationError):
    """A service's full_clean() or check refused the input: 422 naming each field and what to do."""
    fields = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
    detail = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in fields.items())
    return api.create_response(request, error_body("invalid", detail, fields=fields), status=422)


@api.exception_handler(RequestDataTooBig)
def request_too_big(request, exc):
    return api.create_response(request, error_body(
        "too_large",
        f"The request body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes; "
        "send large content as an artifact upload (multipart) instead.",
    ), status=413)


@api.exception_handler(DataError)
def data_error(request, exc):
    """A value the database cannot store (a NUL character, a number out of range): the input's fault."""
    return api.create_response(request, error_body(
        "invalid",
        f"A value cannot be stored: {str(exc).splitlines()[0]}. Remove NUL characters and keep numbers in range.",
    ), status=422)


@api.get("/ping", tags=["meta"], summary="Liveness of the API itself", auth=None)
def ping(request):
    return {"ok": True}


api.add_router("/", leads_router)
api.add_router("/", agents_router)
