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
