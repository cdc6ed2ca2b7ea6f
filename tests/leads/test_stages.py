"""The stage machine: every move allowed from where and by whom, and every refusal (409 naming
the current state and the allowed moves). Exercised through the API with real tokens."""

import pytest

from eidolons.models import Eidolon, Signal
from leads.models import Lead, StageTransition
from tests.factories import LeadFactory

STAGE_OWNER = {"LeadGen": "lilly", "FirstResponder": "mike", "Scoping": "clara", "Orchestra": "aria",
               "Closer": "finn", "Onboarding": "anya", "DeliveryPM": "atlas"}
PATH = {"handoff": "handoff", "escalate": "escalate", "await_human": "await-human", "fail": "fail",
        "complete": "complete"}


def _lead(stage, status):
    return LeadFactory(stage=stage, status=status)


def _do(client, lead, move, reason="because", to_stage=None):
    if move in PATH:
        body = {"reason": reason} if move in ("escalate", "await_human", "fail") else {"summary": "done"}
        return client.post(f"/leads/{lead.pk}/{PATH[move]}", body)
    return client.post(f"/leads/{lead.pk}/moves/{move}", {"reason": reason, "to_stage": to_stage})


# (stage, status, move, who, expected stage, expected status, signal type and recipient or None)
ALLOWED = [
    ("LeadGen", "in_progress", "handoff", "owner", "FirstResponder", "in_progress", ("PIPELINE_TRANSITION", "mike")),
    ("Onboarding", "in_progress", "handoff", "owner", "DeliveryPM", "in_progress", ("PIPELINE_TRANSITION", "atlas")),
    ("Scoping", "in_progress", "handoff", "staff", "Orchestra", "in_progress", ("PIPELINE_TRANSITION", "aria")),
    ("Scoping", "in_progress", "escalate", "owner", "Scoping", "escalated", ("ESCALATION", "mach42v2")),
    ("Scoping", "awaiting_human", "escalate", "owner", "Scoping", "escalated", ("ESCALATION", "mach42v2")),
    ("Closer", "in_progress", "await_human", "owner", "Closer", "awaiting_human", None),
    ("Closer", "in_progress", "fail", "owner", "Closer", "failed", None),
    ("Closer", "awaiting_human", "fail", "owner", "Closer", "failed", None),
    ("Closer", "escalated", "fail", "staff", "Closer", "failed", None),
    ("DeliveryPM", "in_progress", "complete", "owner", "DeliveryPM", "completed", None),
    ("DeliveryPM", "in_progress", "complete", "staff", "DeliveryPM", "completed", None),
    ("Closer", "escalated", "resolve", "staff", "Closer", "in_progress", ("TASK_ASSIGNMENT", "finn")),
    ("Closer", "awaiting_human", "resolve", "staff", "Closer", "in_progress", ("TASK_ASSIGNMENT", "finn")),
    ("Closer", "failed", "reopen", "staff", "Closer", "in_progress", ("TASK_ASSIGNMENT", "finn")),
    ("DeliveryPM", "completed", "reopen", "staff", "DeliveryPM", "in_progress", ("TASK_ASSIGNMENT", "atlas")),
    ("Closer", "escalated", "reassign", "staff", "Scoping", "in_progress", ("PIPELINE_TRANSITION", "clara")),
]


@pytest.mark.parametrize(("stage", "status", "move", "who", "to_stage", "to_status", "signal"), ALLOWED)
def test_allowed_move_changes_the_lead_and_records_transition_and_signal(
    agents, staff_api, stage, status, move, who, to_stage, to_status, signal
):
    lead = _lead(stage, status)
    client = staff_api if who == "staff" else agents[STAGE_OWNER[stage]]

    response = _do(client, lead, move, to_stage="Scoping" if move == "reassign" else None)

    assert response.status_code == 200, response.content
    lead.refresh_from_db()
    assert (lead.stage, lead.status) == (to_stage, to_status)
    transition = StageTransition.objects.get(lead=lead)
    assert (transition.move, transition.from_stage, transition.from_status) == (move, stage, status)
    assert (transition.actor_user is not None) == (who == "staff")
    if signal is None:
        assert transition.signal is None and not Signal.objects.filter(lead=lead).exists()
    else:
        assert (transition.signal.signal_type, transition.signal.recipient.slug) == signal
        assert transition.signal.payload["lead_id"] == str(lead.pk)


# (stage, status, move, who) -> refused with 409 naming the state and what is allowed instead
REFUSED = [
    ("LeadGen", "escalated", "handoff", "owner", ["fail"]),
    ("LeadGen", "awaiting_human", "handoff", "owner", ["escalate", "fail"]),
    ("DeliveryPM", "in_progress", "handoff", "owner", ["escalate", "await_human", "fail", "complete"]),
    ("Scoping", "in_progress", "complete", "owner", ["handoff", "escalate", "await_human", "fail"]),
    ("DeliveryPM", "awaiting_human", "complete", "owner", ["escalate", "fail"]),
    ("Scoping", "escalated", "resolve", "owner", ["fail"]),
    ("Scoping", "failed", "reopen", "owner", []),
    ("Scoping", "in_progress", "reassign", "owner", ["handoff", "escalate", "await_human", "fail"]),
    ("Scoping", "completed", "fail", "staff", ["reopen"]),
    ("Scoping", "failed", "escalate", "staff", ["reopen"]),
    ("Scoping", "escalated", "await_human", "staff", ["resolve", "fail", "reassign"]),
    ("Scoping", "in_progress", "resolve", "staff", ["handoff", "escalate", "await_human", "fail", "reassign"]),
    ("Scoping", "in_progress", "reopen", "staff", ["handoff", "escalate", "await_human", "fail", "reassign"]),
]


@pytest.mark.parametrize(("stage", "status", "move", "who", "allowed"), REFUSED)
def test_refused_move_answers_409_naming_the_state_and_the_allowed_moves(
    agents, staff_api, stage, status, move, who, allowed
):
    lead = _lead(stage, status)
    client = staff_api if who == "staff" else agents[STAGE_OWNER[stage]]

    response = _do(client, lead, move)

    assert response.status_code == 409, response.content
    body = response.json()
    assert (body["error"], body["stage"], body["status"], body["allowed_moves"]) == ("conflict", stage, status, allowed)
    lead.refresh_from_db()
    assert (lead.stage, lead.status) == (stage, status), "nothing changed"
    assert not StageTransition.objects.filter(lead=lead).exists() and not Signal.objects.filter(lead=lead).exists()


def test_an_eidolon_cannot_move_a_lead_of_another_stage_it_has_seen(agents, lead_id):
    # LILLy handed the lead to Mike; she still sees it but no longer owns its stage
    agents["lilly"].post(f"/leads/{lead_id}/handoff", {})

    response = agents["lilly"].post(f"/leads/{lead_id}/fail", {"reason": "changed my mind"})

    assert response.status_code == 409
    assert (response.json()["error"], response.json()["stage"], response.json()["allowed_moves"]) == (
        "conflict", "FirstResponder", [])


def test_an_eidolon_cannot_even_see_a_lead_it_never_touched(agents, lead_id):
    for path, body in (("handoff", {}), ("escalate", {"reason": "x"}), ("fail", {"reason": "x"}),
                       ("complete", {})):
        assert agents["clara"].post(f"/leads/{lead_id}/{path}", body).status_code == 404
    assert agents["clara"].get(f"/leads/{lead_id}/artifacts").status_code == 404
    assert Lead.objects.get(pk=lead_id).status == "in_progress"


def test_a_core_eidolon_owns_no_stage_and_moves_nothing(agents, lead_id):
    assert agents["mach42v2"].post(f"/leads/{lead_id}/handoff", {}).status_code == 404


@pytest.mark.parametrize("path", ["escalate", "fail", "await-human"])
def test_an_agents_move_that_needs_a_reason_refuses_a_blank_one(agents, lead_id, path):
    response = agents["lilly"].post(f"/leads/{lead_id}/{path}", {"reason": "   "})

    assert response.status_code == 422
    assert (response.json()["error"], response.json()["field"]) == ("reason_required", "reason")
    assert Lead.objects.get(pk=lead_id).status == "in_progress"


@pytest.mark.parametrize(("move", "status"), [("reopen", "failed"), ("reassign", "escalated")])
def test_a_staff_move_that_needs_a_reason_refuses_none(staff_api, max_plan, move, status):
    lead = _lead("Closer", status)

    response = _do(staff_api, lead, move, reason="", to_stage="Scoping")

    assert response.status_code == 422
    assert response.json()["error"] == "reason_required"
    lead.refresh_from_db()
    assert lead.status == status


def test_reassign_needs_another_stage(staff_api, max_plan):
    lead = _lead("Closer", "escalated")
    same = _do(staff_api, lead, "reassign", to_stage="Closer")
    assert same.status_code == 422
    assert same.json()["error"] == "invalid" and "to_stage" in same.json()["fields"]
    none = _do(staff_api, lead, "reassign", to_stage=None)
    assert none.status_code == 422
    assert none.json()["error"] == "invalid" and "to_stage" in none.json()["fields"]


def test_handoff_merges_data_and_sets_the_next_action(agents, lead_id):
    response = agents["lilly"].post(f"/leads/{lead_id}/handoff",
                                    {"summary": "qualified", "data": {"budget": "10k"}, "next_action": "call Anna"})
    lead = Lead.objects.get(pk=lead_id)
    assert lead.data == {"budget": "10k"} and lead.next_action == "call Anna"
    assert response.json()["transition"]["summary"] == "qualified"


def test_reopen_refused_while_another_open_lead_has_the_same_email(agents, staff_api):
    old = _lead("Closer", "failed")
    agents["lilly"].post("/leads", {"company": "Acme again", "email": "anna@acme.example"})

    response = _do(staff_api, old, "reopen")

    assert response.status_code == 409
    assert (response.json()["error"], response.json()["status"]) == ("conflict", "failed")
    old.refresh_from_db()
    assert old.status == "failed"


def test_handoff_to_a_stage_without_an_owner_is_refused_and_writes_nothing(agents, lead_id):
    Eidolon.objects.filter(slug="mike").update(stage=None)
    response = agents["lilly"].post(f"/leads/{lead_id}/handoff", {})
    assert response.status_code == 409
    assert (response.json()["error"], response.json()["stage"]) == ("no_stage_owner", "FirstResponder")
    assert Lead.objects.get(pk=lead_id).stage == "LeadGen"
    assert StageTransition.objects.filter(lead_id=lead_id).count() == 1, "only the ingest"
