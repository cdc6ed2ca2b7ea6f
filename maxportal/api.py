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
from django.core.exceptions import ValidationError as _DjangoValidationError  # noqa: E402

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


api.add_router("/", _leads_router)
api.add_router("/", _agents_router)
