"""Reads of the eidolons app: the one lookup of an Eidolon's agent of a kind."""

import pytest

from eidolons.models import CliAgent, Eidolon
from eidolons.selectors import agent_of_kind
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
