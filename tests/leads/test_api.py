"""The leads API end to end: the seed's full pipeline flow with tokens, ingest, listing, status."""

import itertools

import pytest
from django.db import OperationalError, connection

from eidolons.choices import PIPELINE_ORDER, STAGE_FOLDERS, SignalTypeChoices
from eidolons.models import Signal
from leads.models import Lead, StageArtifact, StageTransition

FLOW = ["lilly", "mike", "clara", "aria", "finn", "anya", "atlas"]


def test_the_seeds_flow_runs_from_lilly_to_atlas_and_completes_through_the_api(agents, settings, tmp_path):
    # Given the plan's Eidolons with a token each, and storage in a temporary folder
    settings.MEDIA_ROOT = str(tmp_path)
    # When LILLy ingests a lead and each Eidolon reads its inbox, acknowledges, adds an artifact and hands off
    response = agents["lilly"].post("/leads", {"company": "Acme GmbH", "contact_name": "Anna Berg",
                                              "email": "anna@acme.example", "source": "website"})
    assert response.status_code == 201, response.content
    lead_id = response.json()["id"]

    for index, slug in enumerate(FLOW):
        me = agents[slug]
        inbox = me.get("/signals").json()
        mine = [s for s in inbox if s["lead_id"] == lead_id and s["type"] == "PIPELINE_TRANSITION"]
        assert len(mine) == 1, f"{slug} finds the lead's transition signal in its inbox"
        assert mine[0]["payload"]["next_stage"] == PIPELINE_ORDER[index]
        assert me.post(f"/signals/{mine[0]['id']}/ack").status_code == 200

        up = me.upload(f"/leads/{lead_id}/artifacts", {"name": f"{slug}-notes.md", "text": f"notes of {slug}"})
        assert up.status_code == 201, up.content
        assert up.json()["path"] == f"max-pipeline/{lead_id}/{STAGE_FOLDERS[PIPELINE_ORDER[index]]}/{slug}-notes.md"

        if slug != "atlas":
            moved = me.post(f"/leads/{lead_id}/handoff", {"summary": f"{slug} is done", "agent": "claude"})
            assert moved.status_code == 200, moved.content
            assert moved.json()["lead"]["stage"] == PIPELINE_ORDER[index + 1]
        else:
            done = me.post(f"/leads/{lead_id}/complete", {"summary": "delivered"})
            assert done.status_code == 200, done.content

    # Then the lead is completed at DeliveryPM with its whole history, a signal per handoff, and seven artifacts
    status = agents["atlas"].get(f"/leads/{lead_id}").json()
    assert (status["stage"], status["status"]) == ("DeliveryPM", "completed")
    moves = [(h["move"], h["from_stage"], h["to_stage"]) for h in status["history"]]
    assert moves == [("ingest", "", "LeadGen")] + [
        ("handoff", a, b) for a, b in itertools.pairwise(PIPELINE_ORDER)
    ] + [("complete", "DeliveryPM", "DeliveryPM")]
    handoffs = StageTransition.objects.filter(lead_id=lead_id, move="handoff").select_related("signal__recipient")
    for t in handoffs:
        assert t.signal is not None and t.signal.recipient.stage == t.to_stage, "each handoff signalled the next owner"
        assert t.signal.payload["previous_stage"] == t.from_stage and t.signal.payload["next_stage"] == t.to_stage
        assert t.actor_agent is not None and t.actor_agent.kind == "claude"
    assert StageArtifact.objects.filter(lead_id=lead_id).count() == 7
    assert (tmp_path / "max-pipeline" / lead_id / "stage-7-delivery" / "atlas-notes.md").read_text() == "notes of atlas"
    assert not Signal.objects.filter(lead_id=lead_id, acknowledged_at__isnull=True).exists()


def test_ingest_returns_the_open_lead_with_duplicate_of_for_the_same_email_or_domain(agents):
    first = agents["lilly"].post("/leads", {"company": "Acme", "email": "anna@acme.example"}).json()

    same_email = agents["lilly"].post("/leads", {"company": "ACME", "email": " ANNA@acme.example "})
    same_domain = agents["lilly"].post("/leads", {"company": "Acme Sales", "email": "bob@acme.example"})

    assert same_email.status_code == 200 and same_email.json()["duplicate_of"] == first["id"]
    assert same_domain.status_code == 200 and same_domain.json()["duplicate_of"] == first["id"]
    assert Lead.objects.count() == 1


def test_ingest_does_not_treat_free_mail_domains_as_one_company(agents):
    a = agents["lilly"].post("/leads", {"company": "Solo A", "email": "a@gmail.com"})
    b = agents["lilly"].post("/leads", {"company": "Solo B", "email": "b@gmail.com"})
    assert a.status_code == b.status_code == 201


def test_ingest_after_the_first_lead_closed_creates_a_new_one(agents, staff_api):
    first = agents["lilly"].post("/leads", {"company": "Acme", "email": "anna@acme.example"}).json()
    assert agents["lilly"].post(f"/leads/{first['id']}/fail", {"reason": "no budget"}).status_code == 200

    again = agents["lilly"].post("/leads", {"company": "Acme", "email": "anna@acme.example"})

    assert again.status_code == 201 and again.json()["id"] != first["id"]


def test_ingest_signals_the_leadgen_eidolon_and_records_the_first_transition(agents, lead_id):
    signal = Signal.objects.get(lead_id=lead_id)
    assert signal.recipient.slug == "lilly" and signal.signal_type == SignalTypeChoices.PIPELINE_TRANSITION
    assert StageTransition.objects.get(lead_id=lead_id).signal == signal


def test_only_the_leadgen_eidolon_and_staff_ingest(agents, staff_api):
    refused = agents["clara"].post("/leads", {"company": "Acme", "email": "anna@acme.example"})
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert staff_api.post("/leads", {"company": "Acme", "email": "anna@acme.example"}).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "company"),
        ({"company": ""}, "company"),
        ({"company": "Acme", "email": "not an email"}, "email"),
        ({"company": "Acme", "source": "carrier pigeon"}, "source"),
        ({"company": "Acme\x00"}, "company"),
        ({"company": "Acme", "data": [1, 2]}, "data"),
    ],
)
def test_ingest_refuses_bad_input_naming_the_field(agents, body, field):
    response = agents["lilly"].post("/leads", body)
    assert response.status_code == 422, response.content
    assert field in response.content.decode(), f"the error names {field}"
    assert Lead.objects.count() == 0


def test_ingest_refuses_data_over_the_size_limit(agents, settings):
    settings.MAXPORTAL_API_MAX_JSON_BYTES = 1000
    response = agents["lilly"].post("/leads", {"company": "Acme", "data": {"blob": "x" * 2000}})
    assert response.status_code == 422 and "data" in response.json()["fields"]
    assert Lead.objects.count() == 0


def test_list_filters_by_stage_status_source_and_owner_and_paginates(agents, staff_api):
    for i in range(5):
        agents["lilly"].post("/leads", {"company": f"C{i}", "email": f"x@c{i}.example",
                                        "source": "website" if i % 2 else "email"})
    one = Lead.objects.order_by("created_at").first()
    agents["lilly"].post(f"/leads/{one.pk}/handoff", {})

    def ids(params):
        body = staff_api.get("/leads", params).json()
        return body["count"], len(body["items"])

    assert ids({}) == (5, 5)
    assert ids({"stage": "FirstResponder"}) == (1, 1)
    assert ids({"owner": "mike"}) == (1, 1)
    assert ids({"owner": "lilly", "source": "website"})[0] == len(
        [i for i in range(5) if i % 2]) - (1 if one.source == "website" else 0)
    assert ids({"status": "failed"}) == (0, 0)
    assert ids({"limit": 2, "offset": 4}) == (5, 1)
    assert staff_api.get("/leads", {"stage": "Nowhere"}).status_code == 422


def test_list_query_count_does_not_grow_with_the_leads(agents, staff_api, django_assert_max_num_queries):
    for i in range(30):
        agents["lilly"].post("/leads", {"company": f"C{i}", "email": f"x@c{i}.example"})
    with django_assert_max_num_queries(8):
        body = staff_api.get("/leads", {"limit": 30}).json()
    assert len(body["items"]) == 30


def test_an_eidolon_lists_only_the_leads_of_its_stage_or_that_it_touched(agents, lead_id):
    assert agents["clara"].get("/leads").json()["count"] == 0
    assert agents["mike"].get("/leads").json()["count"] == 0
    agents["lilly"].post(f"/leads/{lead_id}/handoff", {})
    assert agents["mike"].get("/leads").json()["count"] == 1, "the lead is now in Mike's stage"
    assert agents["lilly"].get("/leads").json()["count"] == 1, "LILLy worked on it and still sees it"
    assert agents["clara"].get("/leads").json()["count"] == 0


def test_status_of_a_lead_another_eidolon_never_saw_is_404(agents, lead_id):
    response = agents["clara"].get(f"/leads/{lead_id}")
    assert response.status_code == 404


def test_status_names_stage_status_next_action_history_and_allowed_moves(agents, lead_id):
    body = agents["lilly"].get(f"/leads/{lead_id}").json()
    assert body["stage"] == "LeadGen" and body["status"] == "in_progress" and body["owner"] == "LILLy"
    assert body["allowed_moves"] == ["handoff", "escalate", "await_human", "fail"]
    assert [h["move"] for h in body["history"]] == ["ingest"]


def test_requests_without_a_valid_token_are_401(max_plan, client):
    assert client.get("/api/v1/leads").status_code == 401
    assert client.get("/api/v1/leads", headers={"Authorization": "Bearer mxp_nope_nope"}).status_code == 401
    assert client.get("/api/v1/signals", headers={"Authorization": "Bearer garbage"}).status_code == 401


def test_openapi_docs_list_the_endpoints(client):
    schema = client.get("/api/v1/openapi.json").json()
    for path in ("/api/v1/leads", "/api/v1/leads/{lead_id}/handoff", "/api/v1/signals", "/api/v1/agents/health",
                 "/api/v1/leads/{lead_id}/artifacts", "/api/v1/signals/{signal_id}/ack", "/api/v1/agents/heartbeat"):
        assert path in schema["paths"], path


def test_a_handoff_stays_within_its_query_budget(agents, lead_id, django_assert_max_num_queries):
    # token, savepoint, lock, update, next owner, signal insert, notify (PostgreSQL), transition insert,
    # the mover's SapWave targets answered, release
    with django_assert_max_num_queries(10):
        response = agents["lilly"].post(f"/leads/{lead_id}/handoff", {"summary": "qualified"})
    assert response.status_code == 200


def test_with_the_mirror_on_a_handoff_drops_the_seeds_yaml_into_the_next_inbox(
    agents, lead_id, settings, tmp_path, django_capture_on_commit_callbacks, celery_inline
):
    import yaml

    settings.MAXPORTAL_SIGNAL_MIRROR_ROOT = str(tmp_path)
    with django_capture_on_commit_callbacks(execute=True):
        agents["lilly"].post(f"/leads/{lead_id}/handoff", {"summary": "Lead qualified, ready for requirements"})

    (path,) = (tmp_path / "mike_inbox").glob("*.yaml")
    doc = yaml.safe_load(path.read_text())
    assert doc["type"] == "PIPELINE_TRANSITION" and doc["from"] == "LILLy" and doc["to"] == "Mike"
    assert (doc["previous_stage"], doc["next_stage"]) == ("LeadGen", "FirstResponder")
    assert doc["lead_id"] == lead_id and doc["summary"] == "Lead qualified, ready for requirements"
    assert doc["data_path"] == f"max-pipeline/{lead_id}/stage-1-leadgen/"


def test_a_staff_session_write_without_the_csrf_token_is_refused(staff_user, max_plan):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    response = client.post("/api/v1/leads", {"company": "Acme"}, content_type="application/json")
    assert response.status_code == 403
    assert Lead.objects.count() == 0


def test_a_lead_status_stays_within_its_query_budget_however_long_its_history(
    agents, lead_id, settings, tmp_path, django_assert_max_num_queries
):
    settings.MEDIA_ROOT = str(tmp_path)
    for i in range(5):
        agents["lilly"].upload(f"/leads/{lead_id}/artifacts", {"name": f"n{i}.md", "text": "x"})
    agents["lilly"].post(f"/leads/{lead_id}/handoff", {})
    agents["mike"].post(f"/leads/{lead_id}/handoff", {})
    with django_assert_max_num_queries(8):
        body = agents["clara"].get(f"/leads/{lead_id}").json()
    assert len(body["history"]) == 3 and len(body["artifacts"]) == 5


def test_a_handoff_that_fails_after_the_update_leaves_no_trace(agents, lead_id):
    """Lead, transition and signal are one transaction: a failure in the signal undoes the move, and
    the database's refusal answers 503 unavailable (retry), never a 500."""

    def refuse_signal_inserts(execute, sql, params, many, context):
        # The database refuses the signal's row (after the lead's UPDATE went through).
        if sql.startswith('INSERT INTO "eidolons_signal"'):
            raise OperationalError("the signal could not be written")
        return execute(sql, params, many, context)

    agents["lilly"].client.raise_request_exception = False

    with connection.execute_wrapper(refuse_signal_inserts):
        response = agents["lilly"].post(f"/leads/{lead_id}/handoff", {"summary": "x"})

    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"
    lead = Lead.objects.get(pk=lead_id)
    assert lead.stage == "LeadGen" and lead.status == "in_progress"
    assert StageTransition.objects.filter(lead_id=lead_id).count() == 1, "only the ingest"
    assert Signal.objects.filter(lead_id=lead_id).count() == 1, "only the ingest's signal"
