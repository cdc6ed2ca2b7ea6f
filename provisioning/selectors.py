"""Reads of the provisioning app: capacity of a host against what its containers commit.

The checklist grid's reads are in ``grid.py`` (they read the step registry, whose LXC Created
handler reads the capacity here).
"""

from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, Q, Sum

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


def capacity_refusal(container: Container) -> str | None:
    """Why creating this container would overcommit its host, with the figures, or None."""
    cap = host_capacity(host=container.host)
    problems = []
    if not cap.memory_fits:
        problems.append(
            f"memory: {cap.memory_allocated_mb / 1024:g} GB committed (with CT{container.vmid}'s "
            f"{container.memory_mb / 1024:g} GB) of {cap.memory_mb / 1024:g} GB"
        )
    if not cap.cpu_fits:
        problems.append(
            f"CPU: {cap.cores_allocated} cores committed on {cap.threads} threads, above the limit of "
            f"{cap.cpu_overcommit_limit:g}x ({int(cap.threads * cap.cpu_overcommit_limit)} cores)"
        )
    if not problems:
        return None
    return (
        f"Creating CT{container.vmid} would overcommit host {container.host.name}: {'; '.join(problems)}. "
        "Lower the container's resources or free some on the host, then run the step again."
    )
