"""Idempotency-Key for the API's writes (Stripe's semantics).

A write sent with ``Idempotency-Key: <key>`` is answered once; the answer (status and body) is
stored with a fingerprint of the request, unique per token (or per staff user), in the SAME
transaction as the work. A retry with the same key and the same request gets the stored answer
and changes nothing; the same key with a different request is refused with 422. Two requests with
the same key at once: one commits, the other's transaction (work included) rolls back on the
unique constraint and it answers with the first one's stored response.

Answers to requests that failed validation are not stored (nothing ran); domain refusals (403,
404, 409) are, like Stripe.
"""

import hashlib
import json
from functools import wraps

from django.core.files.uploadedfile import UploadedFile
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.http import HttpResponse, JsonResponse
from ninja import Status
from pydantic import BaseModel

from .exceptions import DomainError

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


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


def _error(status: int, code: str, detail: str, **extra) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail, **extra}, status=status)


def idempotent(view):
    """Decorate a django-ninja write handler (below the ``@router.post``). Handlers return
    ``Status(code, schema instance or dict)`` or a schema instance."""
    from eidolons.models import IdempotencyRecord

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view(request, *args, **kwargs)
        if not key.strip() or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            return _error(422, "invalid_idempotency_key",
                          f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters, e.g. a UUID.")
        actor = request.auth
        owner = {"token": actor.token} if actor.token is not None else {"user": actor.user}
        fp = fingerprint(request, kwargs)
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.select_for_update().filter(key=key, **owner).first()
                if record is not None:
                    return _replay(record, fp, request)
                try:
                    status, body = _render(view(request, *args, **kwargs))
                except DomainError as exc:
                    status, body = exc.status, {"error": exc.code, "detail": exc.message, **exc.details}
                    if exc.status == 429:
                        raise
                content = json.dumps(body, cls=DjangoJSONEncoder)
                IdempotencyRecord.objects.create(
                    key=key, method=request.method, path=request.path[:500], fingerprint=fp,
                    status_code=status, response=content, **owner,
                )
        except IntegrityError:
            # The same key won a race a moment ago (our work is rolled back): answer as it did.
            record = IdempotencyRecord.objects.filter(key=key, **owner).first()
            if record is None:
                raise
            return _replay(record, fp, request)
        return HttpResponse(content, status=status, content_type="application/json")

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
