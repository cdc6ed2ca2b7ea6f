"""Idempotency-Key for the API's writes (Stripe's semantics).

A write sent with ``Idempotency-Key: <key>`` is answered once; the answer (status and body) is
stored with a fingerprint of the request, unique per token (or per staff user), in the SAME
transaction as the work. A retry with the same key and the same request gets the stored answer
and changes nothing; the same key with a different request is refused with 422. Two requests with
the same key at once: one commits, the other's transaction (work included) rolls back on the
unique constraint and it answers with the first one's stored response.

Answers to requests that failed validation are not stored (nothing ran); domain refusals (403,
404, 409) are, like Stripe. They are rendered by the API root's one error mapping, named by the
setting MAXPORTAL_API_ERROR_RENDERER (as DRF names its EXCEPTION_HANDLER), so the stored body is
byte for byte what the API answers without a key.
"""

import hashlib
import json
from datetime import timedelta
from functools import cache, wraps

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.module_loading import import_string
from ninja import Status
from pydantic import BaseModel

from .errors import DomainError, RateLimited
from .models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


@cache
def _error_renderer():
    """``(exc) -> (status, body)`` of the API root (see the module docstring)."""
    return import_string(settings.MAXPORTAL_API_ERROR_RENDERER)


def _canonical(value):
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, UploadedFile):
        value.seek(0)
        digest = hashlib.sha256(value.read()).hexdigest()
        value.seek(0)
        return {"file": value.name, "sha256": digest}
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def fingerprint(request, kwargs: dict) -> str:
    """SHA-256 of the method, the path and the parsed parameters (body, form and files included)."""
    doc = {"method": request.method, "path": request.path, "params": _canonical(kwargs)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, cls=DjangoJSONEncoder).encode()).hexdigest()


def _render(result) -> tuple[int, object]:
    if isinstance(result, Status):
        return result.status_code, _canonical(result.value)
    return 200, _canonical(result)


def _error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=status)


def owner_of(actor) -> str:
    """The record's owner: the token for an Eidolon, the user for a staff session."""
    return f"token:{actor.token.pk}" if actor.token is not None else f"user:{actor.user.pk}"


def idempotent(view):
    """Decorate a django-ninja write handler (below the ``@router.post``). Handlers return
    ``Status(code, schema instance or dict)`` or a schema instance."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view(request, *args, **kwargs)
        if not key.strip() or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            return _error(422, "invalid_idempotency_key",
                          f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters, e.g. a UUID.")
        owner = owner_of(request.auth)
        fp = fingerprint(request, kwargs)
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.select_for_update().filter(key=key, owner=owner).first()
                if record is not None:
                    return _replay(record, fp, request)
                try:
                    status, body = _render(view(request, *args, **kwargs))
                except RateLimited:
                    raise  # not an answer to this request: a retry later must run it
                except DomainError as exc:
                    status, body = _error_renderer()(exc)
                content = json.dumps(body, cls=DjangoJSONEncoder)
                IdempotencyRecord.objects.create(
                    key=key, owner=owner, method=request.method, path=request.path[:500], fingerprint=fp,
                    status_code=status, response=content,
                )
        except IntegrityError:
            # The same key won a race a moment ago (our work is rolled back): answer as it did.
            record = IdempotencyRecord.objects.filter(key=key, owner=owner).first()
            if record is None:
                raise
            return _replay(record, fp, request)
        return HttpResponse(content, status=status, content_type="application/json")

    wrapper.idempotent = True  # the API root declares the Idempotency-Key header on such operations
    return wrapper


def _replay(record, fp: str, request) -> HttpResponse:
    if record.fingerprint != fp or record.method != request.method or record.path != request.path[:500]:
        return _error(
            422, "idempotency_key_reused",
            f"The {HEADER} {record.key!r} was used for a different request ({record.method} {record.path}); "
            "use a new key for a new request.",
        )
    response = HttpResponse(record.response, status=record.status_code, content_type="application/json")
    response["Idempotent-Replayed"] = "true"
    return response


def idempotency_records_purge(*, older_than: timedelta | None = None) -> int:
    """Delete stored answers older than MAXPORTAL_IDEMPOTENCY_TTL_HOURS; returns how many.

    Retries come within minutes; a key reused after the TTL is treated as a new request (Stripe keeps
    keys 24 hours).
    """
    age = older_than or timedelta(hours=settings.MAXPORTAL_IDEMPOTENCY_TTL_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - age).delete()
    return deleted
