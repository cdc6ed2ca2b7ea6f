"""Reads of the checklist grid: the plan's steps as rows, the managed containers as columns.

One query definition for the page, the container page and ``manage.py provision --wait``; the rows
come from the step registry, so a registered step shows up without touching this module.
"""

from dataclasses import dataclass, field

from django.db.models import OuterRef, Subquery

from .checklist import STEPS
from .models import ChecklistStep, Container, Drift, ProxmoxHost, StepRun


@dataclass(frozen=True)
class GridCell:
    """One cell of the checklist grid: a step of a container, with what the page shows in it."""

    step: object  # ChecklistStep
    ready: bool  # pending and its prerequisites are met
    manual: bool

    @property
    def state(self) -> str:
        return self.step.state


@dataclass(frozen=True)
class GridRow:
    step: str
    label: str
    manual: bool
    cells: list


@dataclass(frozen=True)
class ChecklistGrid:
    """The plan's checklist: ten rows, one column per managed container."""

    containers: list
    rows: list
    running: int
    drifts: dict = field(default_factory=dict)
    unknown: list = field(default_factory=list)

    @property
    def busy(self) -> bool:
        return self.running > 0


def checklist_grid(*, host: ProxmoxHost | None = None, vmids: list[int] | None = None) -> ChecklistGrid:
    """The grid of the page and of ``manage.py provision --wait``, in three queries."""
    containers = Container.objects.filter(managed=True).select_related("host", "eidolon").order_by("host__name", "vmid")
    if host is not None:
        containers = containers.filter(host=host)
    if vmids:
        containers = containers.filter(vmid__in=vmids)
    containers = list(containers)
    steps = ChecklistStep.objects.filter(container__in=containers).select_related("actor")
    by_container: dict[int, dict[str, object]] = {}
    by_pk = {c.pk: c for c in containers}
    for step in steps:
        step.container = by_pk[step.container_id]  # the page reads cell.step.container: no query per cell
        by_container.setdefault(step.container_id, {})[step.step] = step
    drifts: dict[int, list] = {}
    unknown = []
    open_drifts = Drift.objects.filter(resolved_at__isnull=True).select_related("host").order_by("host__name", "vmid")
    if host is not None:
        open_drifts = open_drifts.filter(host=host)
    for drift in open_drifts:
        if drift.container_id is None:
            unknown.append(drift)
        else:
            drifts.setdefault(drift.container_id, []).append(drift)
    states_of = {pk: {name: row.state for name, row in rows_.items()} for pk, rows_ in by_container.items()}
    rows = []
    running = 0
    for spec in STEPS:
        step_name = spec.slug
        cells = []
        for container in containers:
            step = by_container.get(container.pk, {}).get(step_name)
            if step is None:
                cells.append(None)
                continue
            running += step.state == "running"
            cells.append(GridCell(step=step, ready=STEPS.ready(states_of[container.pk], step_name),
                                  manual=spec.manual))
        rows.append(GridRow(step=step_name, label=spec.label, manual=spec.manual, cells=cells))
    return ChecklistGrid(containers=containers, rows=rows, running=running, drifts=drifts, unknown=unknown)


def provisioning_in_progress(*, containers) -> bool:
    """True while a step runs, or a "provision all" chain is between two steps (the last attempt of
    the container was part of the chain, succeeded, and an automated step is ready but not started)."""
    ids = [c.pk for c in containers]
    if StepRun.objects.filter(step__container_id__in=ids, state="running").exists():
        return True
    states: dict[int, dict[str, str]] = {}
    for container_id, step, state in ChecklistStep.objects.filter(container_id__in=ids).values_list(
        "container_id", "step", "state"
    ):
        states.setdefault(container_id, {})[step] = state
    # Read after the first query: a step started since shows as running here (a chain moving on
    # between the two reads must not look finished).
    if any("running" in st.values() for st in states.values()):
        return True
    waiting = [cid for cid, st in states.items() if any(STEPS.ready(st, s) for s in STEPS.automated)]
    if not waiting:
        return False
    latest = StepRun.objects.filter(step__container_id=OuterRef("pk")).order_by("-started_at", "-id")
    return (
        Container.objects.filter(pk__in=waiting)
        .annotate(
            last_follow_on=Subquery(latest.values("follow_on")[:1]),
            last_state=Subquery(latest.values("state")[:1]),
        )
        # "running": the chain moved on since the reads above, which is still in progress.
        .filter(last_follow_on=True, last_state__in=["succeeded", "running"])
        .exists()
    )
