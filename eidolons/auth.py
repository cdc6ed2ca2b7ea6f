"""Who is calling the API: an Eidolon's agent with a bearer token, or a staff user with a session.

Both give the kernel's ``Actor``; services take it and scope their queries by it (an Eidolon sees
its stage's leads and its own inbox; staff see everything, through the same stage machine).
Tokens belong to Eidolons, so their check lives here; the per-token budget is the kernel's.
"""

from ninja.security import HttpBearer, SessionAuth

from maxportal.kernel.actors import Actor
from maxportal.kernel.db import db_sync_to_async
from maxportal.kernel.ratelimit import rate_limit

from .services import api_token_authenticate


def _token_actor(raw: str) -> Actor | None:
    token = api_token_authenticate(raw)
    if token is None:
        return None
    rate_limit(f"token:{token.pk}")
    return Actor.for_token(token)


class TokenAuth(HttpBearer):
    """``Authorization: Bearer <token>`` issued to an Eidolon (admin or ``manage.py issue_token``)."""

    def authenticate(self, request, token):
        return _token_actor(token)


class AsyncTokenAuth(HttpBearer):
    """The same, for async views (see kernel.db.db_sync_to_async)."""

    async def authenticate(self, request, token):
        return await db_sync_to_async(_token_actor)(token)


class StaffSessionAuth(SessionAuth):
    """A logged-in staff user's session cookie (with the CSRF check django-ninja applies to cookies)."""

    def authenticate(self, request, key):
        user = request.user
        if user.is_authenticated and user.is_active and user.is_staff:
            rate_limit(f"user:{user.pk}")
            return Actor.for_user(user, "api")
        return None


token_or_staff = [TokenAuth(), StaffSessionAuth()]
async_token_or_staff = [AsyncTokenAuth(), StaffSessionAuth()]
