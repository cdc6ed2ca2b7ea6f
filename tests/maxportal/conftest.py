"""The API contract tests use the leads tests' lead (the API clients, one bearer token per Eidolon,
are shared fixtures in tests/conftest.py)."""

from tests.leads.conftest import lead_id  # noqa: F401 (fixture)
