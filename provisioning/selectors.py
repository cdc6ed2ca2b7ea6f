"""Reads of the provisioning app: capacity of a host against what its containers commit."""

from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, OuterRef, Q, Subquery, Sum

from .models import Container, ProxmoxHost


@dataclass(frozen=True)
class HostCapacity:
    """Allocated against capacity on one host; disk of containers of unknown size is not zero."""

    host: ProxmoxHost
    containers: int
    cores_allocated: int
    threads: int
    memory_allocated_mb: int
    memory_mb: int
    disk_allocated_gb: int
    disk_gb: int
    disk_unknown: list[str] = field(default_factory=list)
    cpu_overcommit_limit: float = 1.0

    @property
    def cpu_ratio(self) -> float:
        return self.cores_allocated / self.threads if self.threads else float("inf")

    @property
    def cpu_fits(self) -> bool:
        return self.cores_allocated <= self.threads * self.cpu_overcommit_limit

    @property
    def cpu_time_shared(self) -> bool:
        return self.cores_allocated > self.threads

    @property
    def memory_fits(self) -> bool:
        return self.memory_allocated_mb <= self.memory_mb

    @property
    def disk_fits(self) -> bool:
        """Known disk fits; containers of unknown size are listed apart, not counted as zero."""
        return self.disk_allocated_gb <= self.disk_gb

    @property
    def fits(self) -> bool:
        return self.cpu_fits and self.memory_fits and self.disk_fits

    def summary(self) -> list[str]:
        cpu = f"{self.cores_allocated} cores allocated on {self.threads} threads"
        if self.cpu_time_shared:
            cpu += f" (time-shared, {self.cpu_ratio:.2f}x; limit {self.cpu_overcommit_limit:g}x)"
        disk = f"{self.disk_allocated_gb} of {self.disk_gb} GB disk"
        if self.disk_unknown:
            disk += f" (+ unknown for {', '.join(self.disk_unknown)})"
        return [
            cpu,
            f"{self.memory_allocated_mb / 1024:g} of {self.memory_mb / 1024:g} GB memory",
            disk,
            "the plan fits" if self.fits else "the plan does NOT fit",
        ]


def host_capacity(*, host: ProxmoxHost) -> HostCapacity:
    """Sum what the host's containers commit (one query) and compare it with the host."""
    totals = Container.objects.filter(host=host).aggregate(
        containers=Count("id"),
        cores=Sum("cores"),
        memory=Sum("memory_mb"),
        disk=Sum("rootfs_gb"),
    )
    unknown = Container.objects.filter(host=host, rootfs_gb__isnull=True).order_by("vmid")
    return HostCapacity(
        host=host,
        containers=totals["containers"] or 0,
        cores_allocated=totals["cores"] or 0,
        threads=host.cpu_threads,
        memory_allocated_mb=totals["memory"] or 0,
        memory_mb=host.memory_mb,
        disk_allocated_gb=totals["disk"] or 0,
        disk_gb=host.storage_gb,
        disk_unknown=[f"CT{c.vmid}" for c in unknown.only("vmid")],
        cpu_overcommit_limit=settings.MAXPORTAL_CPU_OVERCOMMIT_RATIO,
    )


def host_list_with_allocation():
    """Hosts annotated with their allocated totals, for list pages (no per-row queries)."""
    return ProxmoxHost.objects.annotate(
        container_count=Count("containers"),
        cores_allocated=Sum("containers__cores"),
        memory_allocated_mb=Sum("containers__memory_mb"),
        disk_allocated_gb=Sum("containers__rootfs_gb"),
        disk_unknown_count=Count("containers", filter=Q(containers__rootfs_gb__isnull=True)),
    )


# --- The provisioning checklist -----------------------------------------------------------------


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


def _ready(states: dict, step: str) -> bool:
    from .choices import STEP_PREREQUISITES, STEP_SATISFIED_STATES

    return states.get(step) == "pending" and all(
        states.get(p) in STEP_SATISFIED_STATES for p in STEP_PREREQUISITES[step]
    )


def checklist_grid(*, host: ProxmoxHost | None = None, vmids: list[int] | None = None) -> ChecklistGrid:
    """The grid of the page and of ``manage.py provision --wait``, in three queries."""
    from .choices import MANUAL_STEPS, STEP_ORDER, StepChoices
    from .models import ChecklistStep, Drift

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
    for step_name in STEP_ORDER:
        cells = []
        for container in containers:
            step = by_container.get(container.pk, {}).get(step_name)
            if step is None:
                cells.append(None)
                continue
            running += step.state == "running"
            cells.append(GridCell(step=step, ready=_ready(states_of[container.pk], step_name),
                                  manual=step_name in MANUAL_STEPS))
        rows.append(GridRow(step=step_name, label=StepChoices(step_name).label, manual=step_name in MANUAL_STEPS,
                            cells=cells))
    return ChecklistGrid(containers=containers, rows=rows, running=running, drifts=drifts, unknown=unknown)


def provisioning_in_progress(*, containers) -> bool:
    """True while a step runs, or a "provision all" chain is between two steps (the last attempt of
    the container was part of the chain, succeeded, and an automated step is ready but not started)."""
    from .choices import AUTOMATED_STEPS
    from .models import ChecklistStep, StepRun

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
    waiting = [cid for cid, st in states.items() if any(_ready(st, s) for s in AUTOMATED_STEPS)]
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
