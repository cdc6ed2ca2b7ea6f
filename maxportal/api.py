"""The API root: one NinjaAPI at /api/v1/ with a router per app, domain errors mapped to HTTP here."""

from ninja import NinjaAPI

from .exceptions import DomainError

api = NinjaAPI(
    title="maxportal API",
    version="1",
    description="The MAX Pipeline's API: leads, handoffs, signals and agent health for the Eidolons' CLI agents.",
    urls_namespace="api",
)


@api.exception_handler(DomainError)
def domain_error(request, exc: DomainError):
    return api.create_response(
        request, {"error": exc.code, "detail": exc.message, **exc.details}, status=exc.status
    )


@api.get("/ping", tags=["meta"], summary="Liveness of the API itself", auth=None)
def ping(request):
    return {"ok": True}


# --- Leads, signals and the agents (issue 4) ------------------------------------------------
from django.conf import settings  # noqa: E402
from django.core.exceptions import RequestDataTooBig as _RequestDataTooBig  # noqa: E402
from django.core.exceptions import ValidationError as _DjangoValidationError  # noqa: E402
from django.db import DataError as _DataError  # noqa: E402

from eidolons.api import router as _agents_router  # noqa: E402
from leads.api import router as _leads_router  # noqa: E402

from .auth import RateLimited  # noqa: E402


@api.exception_handler(RateLimited)
def rate_limited(request, exc: RateLimited):
    response = domain_error(request, exc)
    response["Retry-After"] = str(exc.details["retry_after"])
    return response


@api.exception_handler(_DjangoValidationError)
def validation_error(request, exc: _DjangoValidationError):
    """A service's full_clean() or check refused the input: 422 naming each field and what to do."""
    fields = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
    detail = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in fields.items())
    return api.create_response(request, {"error": "invalid", "detail": detail, "fields": fields}, status=422)


@api.exception_handler(_RequestDataTooBig)
def request_too_big(request, exc):
    return api.create_response(request, {
        "error": "too_large",
        "detail": f"The request body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes; "
                  "send large content as an artifact upload (multipart) instead.",
    }, status=413)


@api.exception_handler(_DataError)
def data_error(request, exc):
    """A value the database cannot store (a NUL character, a number out of range): the input's fault."""
    return api.create_response(request, {
        "error": "invalid",
        "detail": f"A value cannot be stored: {str(exc).splitlines()[0]}. Remove NUL characters and "
                  "keep numbers in range.",
    }, status=422)


api.add_router("/", _leads_router)
api.add_router("/", _agents_router)
