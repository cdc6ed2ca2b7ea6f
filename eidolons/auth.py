"""Who is calling the API: an Eidolon's agent with a bearer token, or a staff user with a session.

Both give the kernel's ``Actor``; services take it and scope their queries by it (an Eidolon sees
its stage's leads and its own inbox; staff see everything, through the same stage machine).
Tokens belong to Eidolons, so their check lives here; the per-token budget is the kernel's.

The answers, on every method alike:
- an ``Authorization`` header that is not ``Bearer <token>``, or a token that is unknown or
  revoked: 401 naming which (a token is never silently ignored in favour of a session);
- no credential at all: 401 ``not_authenticated`` (raised by django-ninja, rendered by the API root);
- the CSRF check applies only to a request that carries a staff session (403 ``csrf_failed``).
"""

from django.conf import settings
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from maxportal.kernel.actors import Actor
from maxportal.kernel.db import db_sync_to_async
from maxportal.kernel.errors import Forbidden, NotAuthenticated
from maxportal.kernel.ratelimit import rate_limit

from .models import ApiToken
from .services import api_token_authenticate

HOW_TO_GET_A_TOKEN = "ask an operator for one (`manage.py issue_token <eidolon>` or the admin)"  # noqa: S105 (advice, not a secret)


class InvalidToken(NotAuthenticated):
    code = "invalid_token"


class RevokedToken(NotAuthenticated):
    code = "token_revoked"


class CsrfFailed(Forbidden):
    code = "csrf_failed"


def _token_actor(raw: str) -> Actor:
    token = api_token_authenticate(raw)
    if token is None:
        # Only the visible prefix is compared here (the secret part was already refused above):
        # saying "revoked" tells the agent to ask for a new token rather than to fix a typo.
        prefix = raw.split("_", 2)[1] if raw.count("_") >= 2 else ""
        if prefix and ApiToken.objects.filter(prefix=prefix, revoked_at__isnull=False).exists():
            raise RevokedToken(f"This token ({prefix}…) was revoked; {HOW_TO_GET_A_TOKEN}.")
        raise InvalidToken(f"The bearer token is not one the portal issued; check it or {HOW_TO_GET_A_TOKEN}.")
    rate_limit(f"token:{token.pk}")
    return Actor.for_token(token)


class TokenAuth(HttpBearer):
    """``Authorization: Bearer <token>`` issued to an Eidolon (admin or ``manage.py issue_token``).

    One class (one security scheme in the OpenAPI) for sync and async views: with ``is_async``
    the check runs through kernel.db.db_sync_to_async, holding no connection of the request's own.
    """

    def __init__(self, *, is_async: bool = False):
        super().__init__()
        self.is_async = is_async  # django-ninja awaits the call when this is set

    def __call__(self, request):
        header = request.headers.get(self.header)
        if not header:
            return None  # no token: a staff session may still authenticate the request
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise InvalidToken(f"The {self.header} header must be 'Bearer <token>'; {HOW_TO_GET_A_TOKEN}.")
        if self.is_async:
            return db_sync_to_async(_token_actor)(raw.strip())
        return _token_actor(raw.strip())

    def authenticate(self, request, token):  # pragma: no cover - __call__ does the work
        return _token_actor(token)


class StaffSessionAuth(APIKeyCookie):
    """A logged-in staff user's session cookie; the CSRF check applies to such requests only."""

    param_name = settings.SESSION_COOKIE_NAME

    def _get_key(self, request):
        return request.COOKIES.get(self.param_name)

    def authenticate(self, request, key):
        user = request.user
        if not (key and user.is_authenticated and user.is_active and user.is_staff):
            return None
        if not getattr(request, "_ninja_csrf_exempt", False) and check_csrf(request):
            raise CsrfFailed("CSRF check failed: a session-authenticated write needs the X-CSRFToken header "
                             "(agents use a bearer token instead).")
        rate_limit(f"user:{user.pk}")
        return Actor.for_user(user, "api")


token_or_staff = [TokenAuth(), StaffSessionAuth()]
async_token_or_staff = [TokenAuth(is_async=True), StaffSessionAuth()]
