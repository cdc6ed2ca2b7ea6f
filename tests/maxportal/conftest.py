"""The API contract tests use the leads tests' API clients (one bearer token per Eidolon)."""

from tests.leads.conftest import _inbox_on_the_request_thread, agents, lead_id, staff_api  # noqa: F401 (fixtures)
