"""The step registry: each step defined once; adding a step is one registration plus its handler.

A toy eleventh step is registered here, through the registry's API only, and the engine, the grid
and the page take it like the plan's ten.
"""

import pytest
from django.urls import reverse

from provisioning.checklist import STEPS, StepSpec
from provisioning.engine.outcome import Outcome
from provisioning.grid import checklist_grid
from provisioning.models import ChecklistEvent, ChecklistStep, StepRun
from provisioning.services import container_provision, step_run_start

from .engine import row


@pytest.fixture
def toy_step():
    """An eleventh step after LXC Created: one turn that waits, one that is done."""
    turns = []

    def handler(run, spec):
        turns.append(run.phase)
        if run.phase == "begin":
            run.phase = "wait_toy"
            return Outcome.wait(0)
        return Outcome.done(f"{spec.label} of CT{run.step.container.vmid} done")

    spec = STEPS.register(StepSpec(
        "toy_step", "Toy Step", prerequisites=("lxc_created",), time_limit_s=60, handler=handler,
        preview=lambda container, spec: ("Toy preview", f"would poke CT{container.vmid}"),
    ))
    yield spec, turns
    STEPS.unregister("toy_step")


def test_a_registered_eleventh_step_runs_through_the_engine_to_done(ct201, operator, driver, toy_step):
    _spec, turns = toy_step
    ChecklistStep.objects.filter(container=ct201, step="lxc_created").update(state="done")
    # When the toy step is started and the engine delivers its messages
    run = step_run_start(container=ct201, step="toy_step", actor=operator)
    driver.run()
    # Then it went through both turns and is done, audited like any step
    cell = row(ct201, "toy_step")
    run.refresh_from_db()
    assert (cell.state, run.state, turns) == ("done", "succeeded", ["begin", "wait_toy"])
    assert cell.output_tail == "Toy Step of CT201 done"
    assert list(ChecklistEvent.objects.filter(container=ct201, step="toy_step").values_list(
        "from_state", "to_state")) == [("running", "done"), ("pending", "running")]


def test_a_registered_step_is_on_the_grid_and_in_provision_all(ct201, operator, broker, toy_step):
    ChecklistStep.objects.filter(container=ct201, step="lxc_created").update(state="done")
    grid = checklist_grid(vmids=[201])
    assert [r.step for r in grid.rows][-1] == "toy_step" and len(grid.rows) == 11
    assert "toy_step" in [r.step.step for r in container_provision(container=ct201, actor=operator)]
    assert StepRun.objects.filter(step__step="toy_step").count() == 1


def test_the_page_shows_a_registered_steps_preview(staff_client, toy_step, ct201):
    # (the step is registered before the plan gets its checklist rows, as after a deploy)
    response = staff_client.get(reverse("provisioning:step_detail", args=[ct201.pk, "toy_step"]))
    assert response.status_code == 200
    assert "Toy preview" in response.content.decode() and "would poke CT201" in response.content.decode()


def test_the_registry_refuses_a_step_it_cannot_run():
    with pytest.raises(ValueError, match="unknown steps: nope"):
        STEPS.register(StepSpec("bad_step", "Bad", prerequisites=("nope",), handler=lambda run, spec: None))
    with pytest.raises(ValueError, match="needs a handler"):
        STEPS.register(StepSpec("bad_step", "Bad"))
    with pytest.raises(ValueError, match="registered already"):
        STEPS.register(StepSpec("lxc_created", "Again", handler=lambda run, spec: None))
    assert "bad_step" not in STEPS and len(STEPS.order) == 10


def test_every_automated_step_has_a_handler_and_a_preview_and_root_needs_name_their_parameters():
    for spec in STEPS:
        if spec.automated:
            assert spec.handler is not None and spec.preview is not None, spec.slug
        assert bool(spec.root_params) == bool(spec.root_why), spec.slug
    assert [s.slug for s in STEPS.needing_root(["features"])] == ["lxc_created"]
    assert [s.slug for s in STEPS.needing_root(["mp0"])] == ["signal_dir"]
