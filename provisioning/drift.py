"""Drift: what differs between Proxmox and the records (memory or cores changed outside the portal,
a container missing, an unknown container on the host), as open findings.

Idempotent: a finding is one open row per (host, vmid, kind); checking again refreshes it, and a
finding that went away is resolved. Proxmox is read first and the database written after, so no
lock is held while Proxmox answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.utils import timezone

from .choices import ContainerStatusChoices, DriftKindChoices, StepChoices, StepStateChoices
from .integrations.proxmox.client import ProxmoxClient
from .integrations.proxmox.errors import ProxmoxError
from .models import ChecklistStep, Container, Drift, ProxmoxHost


@dataclass
class DriftReport:
    host: str
    checked: int = 0
    found: list[str] = field(default_factory=list)
    resolved: int = 0
    error: str = ""


def _parse_memory(config: dict, listing: dict) -> int | None:
    if config.get("memory") not in (None, ""):
        return int(config["memory"])
    if listing.get("maxmem"):
        return int(listing["maxmem"]) // (1024 * 1024)
    return None


def drift_check(*, host: ProxmoxHost) -> DriftReport:
    """Read every container of the host from Proxmox, update the records, and flag what differs.

    Idempotent: a finding is one open row per (host, vmid, kind); checking again refreshes it, and a
    finding that went away is resolved. Proxmox is read first, the database written after, so no
    lock is held while Proxmox answers.
    """
    report = DriftReport(host=host.name)
    client = ProxmoxClient.for_host(host)
    try:
        listing = {int(item["vmid"]): item for item in client.list_containers()}
        configs = {}
        records = list(Container.objects.filter(host=host))
        for container in records:
            if container.vmid in listing:
                configs[container.vmid] = client.get_config(container.vmid)
    except ProxmoxError as exc:
        report.error = f"Proxmox on {host.name} could not be read: {exc.message}"
        return report

    now = timezone.now()
    findings: list[tuple[int, Container | None, str, str, str]] = []
    status_updates: dict[int, str] = {}
    known = {c.vmid for c in records}
    created_states = dict(
        ChecklistStep.objects.filter(container__host=host, step=StepChoices.LXC_CREATED).values_list(
            "container__vmid", "state"
        )
    )
    # A container whose services were verified running should be running.
    in_service = set(
        ChecklistStep.objects.filter(
            container__host=host, step=StepChoices.SERVICES_RUNNING, state=StepStateChoices.DONE
        ).values_list("container__vmid", flat=True)
    )
    for container in records:
        item = listing.get(container.vmid)
        report.checked += 1
        if item is None:
            expected_to_exist = (not container.managed) or created_states.get(container.vmid) == StepStateChoices.DONE
            if expected_to_exist:
                findings.append((container.vmid, container, DriftKindChoices.MISSING, "exists", "absent"))
                status_updates[container.pk] = ContainerStatusChoices.MISSING
            continue
        config = configs.get(container.vmid, {})
        status = item.get("status")
        if status in (ContainerStatusChoices.RUNNING, ContainerStatusChoices.STOPPED):
            status_updates[container.pk] = status
        if container.vmid in in_service and status != ContainerStatusChoices.RUNNING:
            findings.append((container.vmid, container, DriftKindChoices.STATUS, "running", str(status)))
        memory = _parse_memory(config, item)
        if memory is not None and memory != container.memory_mb:
            findings.append((container.vmid, container, DriftKindChoices.MEMORY,
                             f"{container.memory_mb} MiB", f"{memory} MiB"))
        cores = config.get("cores") or item.get("cpus")
        if cores not in (None, "") and int(cores) != container.cores:
            findings.append((container.vmid, container, DriftKindChoices.CORES, str(container.cores), str(cores)))
        hostname = config.get("hostname") or item.get("name")
        if hostname and hostname != container.hostname:
            findings.append((container.vmid, container, DriftKindChoices.HOSTNAME, container.hostname, hostname))
    for vmid, item in listing.items():
        if vmid not in known:
            findings.append((vmid, None, DriftKindChoices.UNKNOWN, "", str(item.get("name") or "")))

    with transaction.atomic():
        for pk, status in status_updates.items():
            Container.objects.filter(pk=pk).update(status=status, last_synced_at=now)
        Container.objects.filter(host=host).exclude(pk__in=status_updates).update(last_synced_at=now)
        seen = set()
        for vmid, container, kind, expected, actual in findings:
            seen.add((vmid, kind))
            report.found.append(
                f"CT{vmid}: {DriftKindChoices(kind).label}" + (f" (record {expected}, Proxmox {actual})"
                                                                 if expected or actual else "")
            )
            updated = Drift.objects.filter(host=host, vmid=vmid, kind=kind, resolved_at__isnull=True).update(
                expected=expected, actual=actual, last_seen_at=now, container=container
            )
            if not updated:
                try:
                    with transaction.atomic():
                        Drift.objects.create(
                            host=host, vmid=vmid, container=container, kind=kind, expected=expected,
                            actual=actual, detected_at=now, last_seen_at=now,
                        )
                except IntegrityError:
                    # A concurrent check (beat can fire twice) opened it first: the same finding.
                    pass
        for drift in Drift.objects.filter(host=host, resolved_at__isnull=True):
            if (drift.vmid, drift.kind) not in seen:
                drift.resolved_at = now
                drift.save(update_fields=["resolved_at"])
                report.resolved += 1
    return report
