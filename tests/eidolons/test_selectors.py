"""Reads of the eidolons app: the one home of "agent of kind" and "stage owner"."""

import pytest

from eidolons.models import CliAgent, Eidolon
from eidolons.selectors import NoStageOwner, agent_of_kind, stage_owner, stage_owner_name, stage_owners, stages_owned_by
from maxportal.kernel.errors import NotFound


def test_agent_of_kind_finds_the_eidolons_own_agent(max_plan):
    mike = Eidolon.objects.get(slug="mike")

    agent = agent_of_kind(mike, "codex")

    assert (agent.eidolon_id, agent.kind) == (mike.pk, "codex")


def test_agent_of_kind_refuses_with_not_found_naming_the_eidolon_kind_and_input(max_plan):
    mike = Eidolon.objects.get(slug="mike")
    CliAgent.objects.filter(eidolon=mike, kind="gemini").delete()

    with pytest.raises(NotFound) as err:
        agent_of_kind(mike, "gemini", field="kind")

    assert err.value.code == "not_found"
    assert err.value.details == {"eidolon": "mike", "kind": "gemini", "field": "kind"}


def test_stage_owners_maps_each_stage_to_its_eidolon_in_pipeline_order(max_plan):
    owners = stage_owners()

    assert [(stage, e.slug) for stage, e in owners.items()] == [
        ("LeadGen", "lilly"), ("FirstResponder", "mike"), ("Scoping", "clara"), ("Orchestra", "aria"),
        ("Closer", "finn"), ("Onboarding", "anya"), ("DeliveryPM", "atlas"),
    ]
    assert stage_owner("Scoping").slug == "clara"


def test_a_stage_nobody_owns_is_a_no_stage_owner_conflict(max_plan):
    Eidolon.objects.filter(slug="mike").update(stage=None)

    with pytest.raises(NoStageOwner) as err:
        stage_owner("FirstResponder")

    assert (err.value.code, err.value.details) == ("no_stage_owner", {"stage": "FirstResponder"})
    assert "FirstResponder" not in stage_owners()


def test_stage_owner_name_annotates_and_stages_owned_by_is_empty_for_a_core_eidolon(max_plan):
    names = Eidolon.objects.annotate(owner=stage_owner_name("stage")).values_list("slug", "owner")

    assert dict(names)["clara"] == "Clara" and dict(names)["maestro"] is None
    assert list(stages_owned_by("clara")) == [{"stage": "Scoping"}]
    assert list(stages_owned_by("maestro")) == []
