"""The API's one contract (issue 8 items 5, 7, 8, 9): who may call, the one error body, and a
schema that says what the code does. Each test asserts one status code and the error code."""

import ast
from pathlib import Path

import pytest
from django.test import Client

from eidolons.models import Eidolon
from eidolons.services import api_token_issue, api_token_revoke
from leads import stages
from leads.models import Lead
from tests.agents_api import AgentClient

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def schema(client):
    return client.get("/api/v1/openapi.json").json()


def _operations(schema):
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            yield path, method, op


# --- item 5: 401 naming the problem, on every method; CSRF only with a staff session ------------


def test_a_post_without_any_credential_answers_401_not_authenticated(max_plan):
    response = AgentClient().post("/leads", {"company": "Acme"})
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


def test_a_post_with_an_authorization_header_that_is_not_bearer_answers_401_invalid_token(max_plan):
    response = AgentClient().post("/agents/heartbeat", {"kind": "claude"}, Authorization="Token abc")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_a_post_with_an_unknown_token_answers_401_invalid_token(max_plan):
    response = AgentClient("mp_nothere_0123456789abcdef").post("/leads", {"company": "Acme"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_a_post_with_a_revoked_token_answers_401_token_revoked(max_plan):
    token, raw = api_token_issue(eidolon=Eidolon.objects.get(slug="mike"))
    api_token_revoke(token=token)
    response = AgentClient(raw).post("/agents/heartbeat", {"kind": "claude"})
    assert response.status_code == 401
    assert response.json()["error"] == "token_revoked"


def test_a_get_with_a_revoked_token_answers_401_token_revoked_too(max_plan):
    token, raw = api_token_issue(eidolon=Eidolon.objects.get(slug="mike"))
    api_token_revoke(token=token)
    response = AgentClient(raw).get("/signals")
    assert response.status_code == 401
    assert response.json()["error"] == "token_revoked"


def test_a_token_post_ignores_csrf_even_with_a_csrf_enforcing_client(max_plan):
    _, raw = api_token_issue(eidolon=Eidolon.objects.get(slug="lilly"))
    response = AgentClient(raw, client=Client(enforce_csrf_checks=True)).post("/leads", {"company": "Acme"})
    assert response.status_code == 201


def test_a_staff_session_post_without_the_csrf_token_answers_403_csrf_failed(max_plan, staff_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    response = AgentClient(client=client).post("/leads", {"company": "Acme"})
    assert response.status_code == 403
    assert response.json()["error"] == "csrf_failed"


def test_a_staff_session_post_with_the_csrf_token_is_made(max_plan, staff_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    client.get("/accounts/login/")  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    response = AgentClient(client=client).post("/leads", {"company": "Acme"}, **{"X-CSRFToken": token})
    assert response.status_code == 201


# --- item 7: one error body everywhere ------------------------------------------------------------


def test_request_validation_answers_422_invalid_naming_the_field(agents):
    response = agents["lilly"].post("/leads", {"company": ""})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid"
    assert list(response.json()["fields"]) == ["company"]


def test_a_body_that_is_not_an_object_answers_422_invalid(agents, lead_id):
    response = agents["lilly"].post(f"/leads/{lead_id}/handoff", [None, None])
    assert response.status_code == 422
    assert response.json()["error"] == "invalid"


def test_an_unroutable_api_path_answers_the_json_404(agents):
    response = agents["lilly"].get("/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_a_method_the_path_does_not_take_answers_the_json_405_with_allow(agents):
    response = agents["lilly"].client.put("/api/v1/leads", headers=agents["lilly"]._headers())
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert "GET" in response["Allow"]


def test_a_body_over_the_size_limit_answers_413_too_large(agents, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = agents["lilly"].post("/leads", {"company": "Acme", "summary": "x" * 2000})
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"


def test_over_the_rate_limit_answers_429_rate_limited_with_retry_after(agents, settings):
    settings.MAXPORTAL_API_RATE_LIMIT = 1
    agents["mike"].get("/agents/health")
    response = agents["mike"].get("/agents/health")
    assert response.status_code == 429
    assert response.json()["error"] == "rate_limited"
    assert int(response["Retry-After"]) >= 1


def test_every_operation_documents_the_one_error_body(schema):
    refs = {
        op["responses"][str(status)]["content"]["application/json"]["schema"]["$ref"]
        for _, _, op in _operations(schema) for status in (401, 422, 429, 503) if str(status) in op["responses"]
    }
    assert refs == {"#/components/schemas/ErrorOut"}


# --- item 8: the schema says what the code does ---------------------------------------------------


def test_every_authenticated_operation_documents_401_429_and_503(schema):
    missing = [
        (method, path, status) for path, method, op in _operations(schema) if op.get("security")
        for status in ("401", "429", "503") if status not in op["responses"]
    ]
    assert missing == []


def test_a_limit_over_the_maximum_answers_422_on_the_leads_list_as_on_the_inbox(agents):
    response = agents["lilly"].get("/leads", {"limit": 201})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid"


def test_a_nul_character_answers_422_invalid_before_any_service(agents):
    response = agents["lilly"].post("/leads", {"company": "Acme\x00"})
    assert response.status_code == 422
    assert response.json()["fields"] == {"company": ["String should match pattern '^[^\\x00]*$'"]}


def test_an_email_that_is_not_an_address_answers_422_invalid_on_email(agents):
    response = agents["lilly"].post("/leads", {"company": "Acme", "email": "not-an-address"})
    assert response.status_code == 422
    assert list(response.json()["fields"]) == ["email"]


def test_an_artifact_name_with_a_trailing_newline_answers_422_as_the_schema_says(agents, lead_id):
    response = agents["lilly"].upload(f"/leads/{lead_id}/artifacts", {"name": "notes.md\n", "text": "hi"})
    assert response.status_code == 422
    assert list(response.json()["fields"]) == ["name"]


def test_the_move_by_name_refuses_ingest_which_no_one_can_make(staff_api, lead_id):
    response = staff_api.post(f"/leads/{lead_id}/moves/ingest", {"reason": "again"})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid"


def test_fail_by_name_without_a_reason_answers_422_reason_required(staff_api, lead_id):
    response = staff_api.post(f"/leads/{lead_id}/moves/fail", {})
    assert response.status_code == 422
    assert response.json()["error"] == "reason_required"
    assert Lead.objects.get(pk=lead_id).status == "in_progress"


def test_the_schema_states_the_rules_the_code_enforces(schema):
    components = schema["components"]["schemas"]
    assert components["MoveName"]["enum"] == list(stages.MOVES)
    assert components["LeadIn"]["properties"]["company"]["pattern"] == "^[^\\x00]*$"
    assert {"format": "email"} in components["LeadIn"]["properties"]["email"]["anyOf"]
    reason = components["StaffMoveIn"]["properties"]["reason"]["description"]
    assert all(name in reason for name, m in stages.MOVES.items() if m.needs_reason)
    limit = next(p for p in schema["paths"]["/api/v1/leads"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 200


# --- item 9: the docs --------------------------------------------------------------------------------


def test_the_docs_show_one_token_scheme_and_the_session(schema):
    assert sorted(schema["components"]["securitySchemes"]) == ["StaffSessionAuth", "TokenAuth"]


def test_every_write_declares_the_idempotency_key_header(schema):
    undeclared = [
        path for path, method, op in _operations(schema) if method == "post"
        and "Idempotency-Key" not in {p["name"] for p in op["parameters"] if p["in"] == "header"}
    ]
    assert undeclared == []


def test_the_description_tells_an_agent_developer_what_they_need(schema):
    text = schema["info"]["description"]
    for needle in ("issue_token", "Retry-After", "answers 404, by design", "PIPELINE_TRANSITION",
                   "delivered again", "Idempotency-Key"):
        assert needle in text, needle


# --- issue 7 item 4: the move endpoints are generated from the stage machine ------------------------


def test_each_move_the_stage_owner_makes_has_its_endpoint_from_the_table(schema):
    generated = {path.rsplit("/", 1)[1] for path in schema["paths"] if path.startswith("/api/v1/leads/{lead_id}/")}
    assert {m.slug for m in stages.MOVES.values() if m.for_agents} <= generated
    assert not {m.slug for m in stages.MOVES.values() if not m.for_agents} & generated


def test_the_eidolons_api_imports_nothing_of_leads():
    for module in ("eidolons/api.py", "eidolons/auth.py"):
        tree = ast.parse((ROOT / module).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {m for m in imported if m.split(".")[0] == "leads"}, module


def test_a_multipart_body_without_its_boundary_answers_400_bad_request(agents, lead_id):
    """Found by the fuzz run: Django's multipart parser raised, and the API answered 500."""
    response = agents["lilly"].client.post(
        f"/api/v1/leads/{lead_id}/artifacts", b"name=x", content_type="multipart/form-data",
        headers=agents["lilly"]._headers(),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
