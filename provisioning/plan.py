"""Loading the MAX plan: the AX42 host, its bridge, the containers, and (through eidolons' services)
the nine Eidolons with their mailboxes and agents.

It lives in provisioning because it creates hosts and containers; provisioning stands on eidolons,
so the Eidolons are created by ``eidolons.services.eidolon_ensure``. Idempotent: a second run
creates nothing and says so; a record an operator changed is left as it is and reported
(``maxportal.kernel.plans``). The data is ``provisioning.plan_data``.
"""

from django.conf import settings
from django.db import transaction

from eidolons.sapwaves.services import sapwaves_plan_load
from eidolons.services import eidolon_ensure
from maxportal.kernel.plans import PlanLoadReport, record_ensure

from . import plan_data
from .choices import ContainerStatusChoices
from .models import Container, NetworkBridge, ProxmoxHost


@transaction.atomic
def max_plan_load() -> PlanLoadReport:
    """Create what the MAX plan names; a second run creates nothing and says so."""
    report = PlanLoadReport()
    facts = {k: v for k, v in plan_data.HOST.items() if k != "name" and k not in plan_data.HOST_CONNECTION_FIELDS}
    connection = {k: plan_data.HOST[k] for k in plan_data.HOST_CONNECTION_FIELDS}
    host = record_ensure(
        report, ProxmoxHost, {"name": plan_data.HOST["name"]}, facts,
        initial={**connection, "api_url": settings.MAXPORTAL_LOCAL_PROXMOX_URL},
    )
    bridge_values = {k: v for k, v in plan_data.BRIDGE.items() if k != "name"}
    bridge = record_ensure(report, NetworkBridge, {"host": host, "name": plan_data.BRIDGE["name"]}, bridge_values)

    containers = {}
    for spec in plan_data.EXISTING_CONTAINERS:
        values = {k: v for k, v in spec.items() if k != "vmid"}
        values.update(storage="", ostemplate="", feature_keyctl=False)
        # The status is what the portal last saw on the node: where it starts, not part of the plan.
        containers[spec["vmid"]] = record_ensure(
            report, Container, {"host": host, "vmid": spec["vmid"]}, values,
            initial={"status": ContainerStatusChoices.UNKNOWN},
        )

    for vmid, name, slug, role, stage, address, ip in plan_data.MAX_EIDOLONS:
        container = record_ensure(
            report, Container, {"host": host, "vmid": vmid},
            {"hostname": slug, "bridge": bridge, "ip_address": ip, **plan_data.MAX_CONTAINER_DEFAULTS},
        )
        eidolon_ensure(report, slug=slug, name=name, role=role, stage=stage, container=container,
                       mailbox_address=address, mailbox_display_name=f"{name} ({role})")

    for spec in plan_data.CORE_EIDOLONS:
        vmid = spec["container_vmid"]
        eidolon_ensure(report, slug=spec["slug"], name=spec["name"], role=spec["role"],
                       container=containers.get(vmid) if vmid else None, personality_notes=spec["personality_notes"])
    # The master plan's SapWave Schedule, once its Eidolons exist (issue 9).
    sapwaves_plan_load(report)
    return report
