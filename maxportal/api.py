"""The API root: one NinjaAPI at /api/v1/ with a router per app, and its one error contract.

The one place where errors become HTTP: ``ERROR_STATUS`` maps each domain error class to its
status, and ``error_status_and_body`` builds the one error body (``{"error", "detail", ...}``).
Every exception handler below, the kernel's idempotency (which stores refusals) and the
middleware for answers given outside django-ninja (an unroutable path, a method the path does
not take) use it. ``MaxportalOpenAPI`` documents that contract on every operation: 401 and 429
where a credential is checked, 422 where input is validated, 413 where a body is read, 503 where
the database is used, each with the one error schema and, for 429/503, the Retry-After header.
"""

import json
import logging

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.db import DataError, OperationalError
from django.http import Http404, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.decorators import sync_and_async_middleware
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as RequestValidationError
from ninja.openapi.schema import OpenAPISchema

from eidolons.api import router as agents_router
from leads.api import MOVES_DOC
from leads.api import router as leads_router
from maxportal.kernel.errors import (
    DomainError,
    Forbidden,
    NotAllowed,
    NotAuthenticated,
    NotFound,
    RateLimited,
    ReasonRequired,
    Unavailable,
)
from maxportal.kernel.idempotency import HEADER as IDEMPOTENCY_HEADER
from maxportal.kernel.schemas import ErrorOut

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1/"

DESCRIPTION = f"""
The MAX Pipeline's API for the Eidolons' CLI agents: leads, handoffs, signals and agent health.

## Authentication
Send `Authorization: Bearer <token>` on every request. A token belongs to one Eidolon (optionally
to one of its agents); an operator issues it with `python manage.py issue_token <eidolon> [--agent
claude]` or in the admin, and it is shown once. A missing, malformed, unknown or revoked token
answers **401** with `error` `not_authenticated`, `invalid_token` or `token_revoked`, on every
method. Staff may use the portal's session cookie instead; only then a write needs the
`X-CSRFToken` header (403 `csrf_failed`).

## Errors
Every error has one body: `{{"error": <code>, "detail": <what to do>, ...}}`. Request validation
answers **422** `invalid` with `fields` naming each refused field; a move not allowed now answers
**409** `conflict` with the lead's `stage`, `status` and `allowed_moves`; an unknown path under
/api/v1/ answers 404 `not_found`, a method the path does not take 405 `method_not_allowed`, a body
over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes 413 `too_large`. Strings may not contain NUL.

## Limits and retries
Each token (or staff user) may send {settings.MAXPORTAL_API_RATE_LIMIT} requests per
{settings.MAXPORTAL_API_RATE_WINDOW} s; over that the API answers **429** `rate_limited` with a
`Retry-After` header (seconds) and `retry_after` in the body. When the portal is overloaded (no
database connection free within {settings.DATABASE_POOL_TIMEOUT} s) it answers **503**
`unavailable` with `Retry-After`; nothing was changed, so retry the same request (with the same
`Idempotency-Key`). List endpoints take `limit` up to 200: a larger `limit` answers 422, it is
never cut silently.

## Idempotency
Every write (POST) takes an `Idempotency-Key` header (1-255 printable characters, e.g. a UUID):
a retry with the same key and body gets the first answer again (header `Idempotent-Replayed:
true`) and changes nothing; the same key with another body answers 422 `idempotency_key_reused`.
Keys are kept {settings.MAXPORTAL_IDEMPOTENCY_TTL_HOURS} hours.

## Stages and moves
Each pipeline stage is owned by one Eidolon. An Eidolon sees the leads in its stage and those it
worked on or was signalled about, and moves only leads in its own stage: **a lead outside your
stage answers 404, by design** (its existence is not revealed). `GET /leads/{{id}}` lists the moves
the caller may make now (`allowed_moves`). The moves (from the stage machine, `leads/stages.py`):

{MOVES_DOC}

A handoff writes its transition and a `PIPELINE_TRANSITION` signal to the next stage's Eidolon
in one transaction. That signal's `payload` has `from`, `to`, `lead_id`, `company`,
`previous_stage`, `next_stage`, `status`, `move`, `summary` (what the sender wrote) and
`data_path` (the storage folder of the artifacts of the stage the lead came from); the lead's
`data` and `next_action` are at `GET /leads/{{id}}`. Escalations go to the escalation Eidolon's
inbox ({settings.MAXPORTAL_ESCALATION_EIDOLON}); a lead a human sends back to work is announced to
its stage's Eidolon with a `TASK_ASSIGNMENT`.

## Inbox, acknowledgement and redelivery
`GET /signals?wait=N` returns pending signals at once, or waits up to
{settings.MAXPORTAL_SIGNAL_MAX_WAIT} s for one. Reading a signal delivers it (`delivered_at`,
`delivery_count`); acknowledge it with `POST /signals/{{id}}/ack` once it is handled. A delivered
signal not acknowledged within {settings.MAXPORTAL_SIGNAL_VISIBILITY_TIMEOUT} s is delivered again
(its `delivery_count` grows): handle signals idempotently.
"""


# What an Idempotency-Key header can carry: printable ASCII, no surrounding spaces (HTTP strips them).
KEY_PATTERN = r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$"


class MaxportalOpenAPI(OpenAPISchema):
    """django-ninja's schema plus the answers every operation can give (see the module docstring)."""

    def _error_ref(self, operation) -> dict:
        # Every operation's own error answers (ERRORS) already put ErrorOut into the components.
        return {"$ref": f"#/components/schemas/{ErrorOut.__name__}"}

    def responses(self, operation):
        result = super().responses(operation)
        sources = {model.__ninja_param_source__ for model in operation.models}
        authenticated = bool(operation.auth_callbacks)
        cross_cutting = {
            401: authenticated,
            413: bool(sources & {"body", "form", "file"}),
            422: bool(sources) or getattr(operation.view_func, "idempotent", False),
            429: authenticated,
            503: authenticated,
        }
        error = {"content": {self.api.renderer.media_type: {"schema": self._error_ref(operation)}}}
        for status, applies in cross_cutting.items():
            if applies and status not in result:
                result[status] = {"description": ERROR_DESCRIPTIONS[status], **error}
        for status in (429, 503):
            if status in result:
                result[status]["headers"] = {"Retry-After": {
                    "description": "Seconds to wait before retrying.", "schema": {"type": "integer"},
                }}
        return result

    def operation_parameters(self, operation):
        params = super().operation_parameters(operation)
        if getattr(operation.view_func, "idempotent", False):
            params.append({
                "in": "header", "name": IDEMPOTENCY_HEADER, "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": KEY_PATTERN},
                "description": "Makes the write safe to retry: the same key and body get the first answer again.",
            })
        return params


ERROR_DESCRIPTIONS = {
    401: "No credential, or an invalid or revoked token (error not_authenticated, invalid_token, token_revoked)",
    413: "The request body is over the size limit (error too_large)",
    422: "The input was refused (error invalid, with fields)",
    429: "Over the rate limit (error rate_limited); see Retry-After",
    503: "Overloaded: no database connection free in time; nothing changed, retry after Retry-After",
}


class MaxportalAPI(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        if path_prefix is None:
            path_prefix = self.get_root_path(path_params or {})
        return MaxportalOpenAPI(self, path_prefix)


api = MaxportalAPI(
    title="maxportal API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api",
)

# Most specific first: the first class an error is an instance of decides its status.
ERROR_STATUS: list[tuple[type[DomainError], int]] = [
    (RateLimited, 429),
    (ReasonRequired, 422),
    (NotAuthenticated, 401),
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


def _respond(request, status: int, body: dict):
    response = api.create_response(request, body, status=status)
    if "retry_after" in body:
        response["Retry-After"] = str(body["retry_after"])
    return response


@api.exception_handler(DomainError)
def domain_error(request, exc: DomainError):
    return _respond(request, *error_status_and_body(exc))


def _invalid(request, fields: dict[str, list[str]]):
    detail = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in fields.items())
    return _respond(request, 422, error_body("invalid", detail, fields=fields))


@api.exception_handler(ValidationError)
def validation_error(request, exc: ValidationError):
    """A service's full_clean() or check refused the input: 422 naming each field and what to do."""
    return _invalid(request, exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages})


@api.exception_handler(RequestValidationError)
def request_validation_error(request, exc: RequestValidationError):
    """django-ninja refused the request's parameters or body: the same 422 as a service's, per field."""
    fields: dict[str, list[str]] = {}
    for err in exc.errors:
        source, *path = (str(part) for part in err["loc"])
        if path[:1] == ["payload"]:  # the handlers' body parameter: the field is what the caller sent
            path = path[1:]
        if not path and source == "body":
            err = {**err, "msg": "the body must be a JSON object with the fields this operation documents"}
        fields.setdefault(".".join(path) or source, []).append(err["msg"])
    return _invalid(request, fields)


@api.exception_handler(AuthenticationError)
def not_authenticated(request, exc):
    # django-ninja raises this when no credential authenticated the request.
    return _respond(request, 401, error_body(
        "not_authenticated",
        "Send Authorization: Bearer <token> (an operator issues one with `manage.py issue_token <eidolon>`), "
        "or log in to the portal as staff.",
    ))


@api.exception_handler(HttpError)
def http_error(request, exc: HttpError):
    # django-ninja's own refusals; the one it raises itself is 400 for a body that is not JSON.
    code = {400: "bad_request"}.get(exc.status_code, f"http_{exc.status_code}")
    return _respond(request, exc.status_code, error_body(code, str(exc)))


@api.exception_handler(MultiPartParserError)
def multipart_unreadable(request, exc):
    """A multipart body Django cannot read (no boundary, cut short): the request's fault, 400."""
    return _respond(request, 400, error_body(
        "bad_request", f"The multipart body cannot be read ({exc}); send multipart/form-data with its boundary.",
    ))


@api.exception_handler(Http404)
def not_found(request, exc):
    return _respond(request, 404, error_body("not_found", str(exc) or "Not found."))


@api.exception_handler(RequestDataTooBig)
def request_too_big(request, exc):
    return _respond(request, 413, error_body(
        "too_large",
        f"The request body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes; "
        "send large content as an artifact upload (multipart) instead.",
    ))


@api.exception_handler(DataError)
def data_error(request, exc):
    """A value the database cannot store (a NUL character, a number out of range): the input's fault."""
    return _respond(request, 422, error_body(
        "invalid",
        f"A value cannot be stored: {str(exc).splitlines()[0]}. Remove NUL characters and keep numbers in range.",
    ))


@api.exception_handler(OperationalError)
def database_unavailable(request, exc):
    """No connection could be had in time (psycopg_pool.PoolTimeout, too many clients, a locked SQLite
    file): shed the load with 503 instead of a 500. The failed statement's transaction rolled back,
    so nothing was half made; the client retries after Retry-After."""
    log.warning("API request shed with 503: %s: %s", type(exc.__cause__ or exc).__name__, exc)
    return domain_error(request, Unavailable(
        "The portal is overloaded and could not serve this request in time; nothing was changed. "
        "Retry after the Retry-After seconds (with the same Idempotency-Key for a write).",
        retry_after=settings.MAXPORTAL_API_RETRY_AFTER_SECONDS,
    ))


def _shaped(request, response):
    if not request.path.startswith(API_PREFIX) or response.status_code not in (404, 405):
        return response
    if response.get("Content-Type", "").startswith("application/json"):
        return response
    if response.status_code == 404:
        body = error_body("not_found", f"There is no API path {request.path}; the operations are listed at "
                                       f"{API_PREFIX}docs.")
    else:
        body = error_body("method_not_allowed", f"{request.path} does not take {request.method}; it takes "
                                                f"{response.get('Allow', 'other methods')}.")
    shaped = HttpResponse(json.dumps(body), status=response.status_code, content_type="application/json")
    if response.has_header("Allow"):
        shaped["Allow"] = response["Allow"]
    return shaped


@sync_and_async_middleware
def api_error_shape_middleware(get_response):
    """Answers under /api/v1/ that django-ninja's handlers never saw (a path no route matches: Django's
    HTML 404; a method the path does not take: an empty 405) get the one error body too. Async-capable:
    the long-poll must not be pushed onto a thread by a sync middleware."""
    if iscoroutinefunction(get_response):

        async def middleware(request):
            return _shaped(request, await get_response(request))

    else:

        def middleware(request):
            return _shaped(request, get_response(request))

    return middleware


@api.get("/ping", tags=["meta"], summary="Liveness of the API itself", auth=None)
def ping(request):
    return {"ok": True}


api.add_router("/", leads_router)
api.add_router("/", agents_router)
