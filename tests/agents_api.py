"""Helpers for tests that talk to the agents' API as an Eidolon (bearer token) or as staff."""

import json as _json

from django.test import Client

from eidolons.models import Eidolon
from eidolons.services import api_token_issue


class AgentClient:
    """A test client that sends ``Authorization: Bearer <token>`` (and an Idempotency-Key when asked)."""

    def __init__(self, token: str | None = None, client: Client | None = None):
        self.client = client or Client()
        self.token = token

    def _headers(self, key=None, **extra):
        headers = dict(extra)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    def get(self, path, params=None, **headers):
        return self.client.get(f"/api/v1{path}", params or {}, headers=self._headers(**headers))

    def post(self, path, json=None, key=None, **headers):
        return self.client.post(
            f"/api/v1{path}", _json.dumps(json if json is not None else {}), content_type="application/json",
            headers=self._headers(key, **headers),
        )

    def upload(self, path, data, key=None):
        return self.client.post(f"/api/v1{path}", data, headers=self._headers(key))


def issue_tokens() -> dict[str, str]:
    """One token per Eidolon of the loaded plan: slug -> raw token."""
    return {e.slug: api_token_issue(eidolon=e, name="test")[1] for e in Eidolon.objects.all()}


def clients_for(tokens: dict[str, str]) -> dict[str, AgentClient]:
    return {slug: AgentClient(raw) for slug, raw in tokens.items()}
