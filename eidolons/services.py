"""Writes of the eidolons app, starting with loading the MAX plan into the database."""

from dataclasses import dataclass, field

from django.conf import settings
from django.db import models, transaction

from provisioning.models import Container, NetworkBridge, ProxmoxHost

from . import max_plan
from .choices import CLI_AGENT_NPM_PACKAGES, CliAgentKindChoices, CliAgentStatusChoices
from .models import CliAgent, Eidolon, M365Account


@dataclass
class PlanLoadReport:
    """What a load of the plan did: records created, and existing ones that differ from the plan."""

    created: list[str] = field(default_factory=list)
    unchanged: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def changed_nothing(self) -> bool:
        return not self.created


def _ensure(report: PlanLoadReport, model: type[models.Model], lookup: dict, values: dict) -> models.Model:
    """Create the record if missing; never overwrite one that exists, but report what differs.

    An operator may have changed a record on purpose (more memory for Clara): the plan is where
    things start, not a reset button.
    """
    instance = model.objects.filter(**lookup).first()
    if instance is None:
        instance = model(**lookup, **values)
        instance.full_clean()
        instance.save()
        report.created.append(f"{model._meta.verbose_name} {instance}")
        return instance
    report.unchanged += 1
    for name, planned in values.items():
        current = getattr(instance, name)
        if isinstance(planned, models.Model):
            current, planned = getattr(instance, f"{name}_id"), planned.pk
        if current != planned:
            report.differences.append(
                f"{model._meta.verbose_name} {instance}: {name} is {current!r}, the plan says {planned!r} (left as is)"
            )
    return instance


def _agent_values(eidolon: Eidolon, kind: CliAgentKindChoices, *, core: bool) -> dict:
    if core:
        # The core Orchestra's agents run in the sessions that exist today (claude_session, ...).
        return {
            "npm_package": CLI_AGENT_NPM_PACKAGES[kind],
            "tmux_session": f"{kind.value}_session",
            "systemd_unit": "",
            "status": CliAgentStatusChoices.INSTALLED,
        }
    return {
        "npm_package": CLI_AGENT_NPM_PACKAGES[kind],
        "tmux_session": f"max-{kind.value}",
        "systemd_unit": f"max-agent@{kind.value}.service",
        "status": CliAgentStatusChoices.NOT_INSTALLED,
    }


@transaction.atomic
def max_plan_load() -> PlanLoadReport:
    """Create what the MAX plan names; a second run creates nothing and says so."""
    report = PlanLoadReport()
    host_values = {k: v for k, v in max_plan.HOST.items() if k != "name"}
    host_values["api_url"] = settings.MAXPORTAL_LOCAL_PROXMOX_URL
    host = _ensure(report, ProxmoxHost, {"name": max_plan.HOST["name"]}, host_values)
    bridge = _ensure(
        report,
        NetworkBridge,
        {"host": host, "name": max_plan.BRIDGE["name"]},
        {"subnet": max_plan.BRIDGE["subnet"], "gateway": max_plan.BRIDGE["gateway"]},
    )

    containers = {}
    for spec in max_plan.EXISTING_CONTAINERS:
        values = {k: v for k, v in spec.items() if k != "vmid"}
        values.update(storage="", ostemplate="", feature_keyctl=False, status="unknown")
        containers[spec["vmid"]] = _ensure(report, Container, {"host": host, "vmid": spec["vmid"]}, values)

    for vmid, name, slug, role, stage, address, ip in max_plan.MAX_EIDOLONS:
        container = _ensure(
            report,
            Container,
            {"host": host, "vmid": vmid},
            {"hostname": slug, "bridge": bridge, "ip_address": ip, **max_plan.MAX_CONTAINER_DEFAULTS},
        )
        mailbox = _ensure(report, M365Account, {"address": address}, {"display_name": f"{name} ({role})"})
        eidolon = _ensure(
            report,
            Eidolon,
            {"slug": slug},
            {"name": name, "role": role, "stage": stage, "container": container, "mailbox": mailbox},
        )
        for kind in CliAgentKindChoices:
            _ensure(report, CliAgent, {"eidolon": eidolon, "kind": kind}, _agent_values(eidolon, kind, core=False))

    for spec in max_plan.CORE_EIDOLONS:
        vmid = spec["container_vmid"]
        eidolon = _ensure(
            report,
            Eidolon,
            {"slug": spec["slug"]},
            {
                "name": spec["name"],
                "role": spec["role"],
                "stage": None,
                "container": containers.get(vmid) if vmid else None,
                "personality_notes": spec["personality_notes"],
            },
        )
        for kind in CliAgentKindChoices:
            _ensure(report, CliAgent, {"eidolon": eidolon, "kind": kind}, _agent_values(eidolon, kind, core=True))
    return report
