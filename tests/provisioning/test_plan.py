"""The plan loader: exact values from the provisioning plan, idempotency, respect for edits."""

import pytest
from django.core.management import call_command

from eidolons.choices import CliAgentKindChoices, M365AccountStateChoices, PipelineStage
from eidolons.models import CliAgent, Eidolon, M365Account
from provisioning.models import Container, NetworkBridge, ProxmoxHost
from provisioning.plan import max_plan_load

pytestmark = pytest.mark.django_db

PLAN_TABLE = [
    (201, "LILLy", "lilly", "Lead Generator", PipelineStage.LEAD_GEN, "lilly@meetmike.pro", "10.0.100.201"),
    (202, "Mike", "mike", "First Responder", PipelineStage.FIRST_RESPONDER, "mike@meetmike.pro", "10.0.100.202"),
    (203, "Clara", "clara", "Scoping", PipelineStage.SCOPING, "clara@meetmike.pro", "10.0.100.203"),
    (204, "Aria", "aria", "Orchestra/Mockups", PipelineStage.ORCHESTRA, "aria@meetmike.pro", "10.0.100.204"),
    (205, "Finn", "finn", "Closer", PipelineStage.CLOSER, "finn@meetmike.pro", "10.0.100.205"),
    (206, "Anya", "anya", "Onboarding", PipelineStage.ONBOARDING, "anya@meetmike.pro", "10.0.100.206"),
    (207, "Atlas", "atlas", "Delivery PM", PipelineStage.DELIVERY_PM, "atlas@meetmike.pro", "10.0.100.207"),
]


def test_loader_creates_the_counts_the_plan_names():
    max_plan_load()
    assert Eidolon.objects.count() == 9
    assert CliAgent.objects.count() == 36
    assert CliAgent.objects.exclude(eidolon__stage=None).count() == 28, "28 of the agents are MAX agents"
    assert Container.objects.count() == 8
    assert M365Account.objects.count() == 7
    assert ProxmoxHost.objects.count() == 1


def test_loader_creates_the_ax42_host_pointing_at_loopback(settings):
    max_plan_load()
    host = ProxmoxHost.objects.get()
    assert (host.name, host.node, host.cpu_model) == ("ax42", "ax42", "AMD Ryzen 7 PRO 8700GE")
    assert (host.cpu_cores, host.cpu_threads, host.memory_mb) == (8, 16, 65536)
    assert host.disks == "2 x 512 GB NVMe"
    assert host.api_url == settings.MAXPORTAL_LOCAL_PROXMOX_URL
    assert host.api_url.startswith(("https://127.0.0.1", "https://localhost", "https://[::1]"))
    bridge = NetworkBridge.objects.get()
    assert (bridge.name, bridge.subnet, bridge.gateway) == ("vmbr1", "10.0.100.0/24", "10.0.100.1")


@pytest.mark.parametrize(("vmid", "name", "slug", "role", "stage", "address", "ip"), PLAN_TABLE)
def test_loader_creates_each_max_eidolon_exactly_as_in_the_plan_table(vmid, name, slug, role, stage, address, ip):
    max_plan_load()
    eidolon = Eidolon.objects.select_related("container", "mailbox").get(slug=slug)
    assert (eidolon.name, eidolon.role, eidolon.stage) == (name, role, stage)
    assert eidolon.mailbox.address == address
    assert eidolon.mailbox.licence == "Business Basic"
    assert eidolon.mailbox.teams_enabled and eidolon.mailbox.outlook_enabled
    assert eidolon.mailbox.state == M365AccountStateChoices.REQUESTED
    ct = eidolon.container
    assert (ct.vmid, ct.hostname, ct.ipv4_cidr, ct.gateway, ct.bridge.name) == (
        vmid, slug, f"{ip}/24", "10.0.100.1", "vmbr1"
    )
    assert (ct.cores, ct.memory_mb, ct.swap_mb, ct.rootfs_gb, ct.storage) == (2, 4096, 0, 40, "local-lvm")
    assert ct.ostemplate == "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
    assert ct.feature_nesting and ct.feature_keyctl and ct.unprivileged and ct.managed


def test_loader_records_ct100_as_pre_existing_with_unknown_disk():
    max_plan_load()
    ct100 = Container.objects.get(vmid=100)
    assert (ct100.hostname, ct100.cores, ct100.memory_mb) == ("mach42v2", 6, 24576)
    assert ct100.rootfs_gb is None, "the plan does not know CT100's disk: unknown, not zero"
    assert not ct100.managed
    assert Eidolon.objects.get(slug="mach42v2").container == ct100


def test_core_eidolons_own_no_stage_and_maestro_has_no_container():
    max_plan_load()
    core = {e.slug: e for e in Eidolon.objects.filter(stage=None)}
    assert set(core) == {"mach42v2", "maestro"}
    assert core["maestro"].container is None
    assert core["maestro"].mailbox is None
    assert all(e.is_core for e in core.values())


def test_every_eidolon_has_its_four_agents_with_plan_names():
    max_plan_load()
    for eidolon in Eidolon.objects.prefetch_related("agents"):
        kinds = sorted(a.kind for a in eidolon.agents.all())
        assert kinds == sorted(CliAgentKindChoices.values), eidolon.name
    lilly_claude = CliAgent.objects.get(eidolon__slug="lilly", kind="claude")
    assert lilly_claude.npm_package == "@anthropic-ai/claude-code"
    assert lilly_claude.tmux_session == "max-claude"
    assert lilly_claude.systemd_unit == "max-agent@claude.service"
    assert CliAgent.objects.get(eidolon__slug="lilly", kind="copilot").npm_package == "@github/copilot"


def test_second_run_changes_nothing_and_says_so():
    first = max_plan_load()
    assert len(first.created) == 70  # 62 records of the provisioning plan, 8 SapWaves of the master plan
    second = max_plan_load()
    assert second.created == []
    assert second.changed_nothing
    assert second.unchanged == 70
    assert Eidolon.objects.count() == 9 and CliAgent.objects.count() == 36


def test_second_run_leaves_an_operator_edit_and_reports_it():
    max_plan_load()
    Container.objects.filter(vmid=203).update(memory_mb=8192)
    report = max_plan_load()
    assert Container.objects.get(vmid=203).memory_mb == 8192, "the loader must not undo an operator's change"
    assert any("CT203" in line and "memory_mb" in line and "4096" in line for line in report.differences)


def test_command_says_when_nothing_changed(capsys):
    call_command("load_max_plan")
    first = capsys.readouterr().out
    call_command("load_max_plan")
    second = capsys.readouterr().out
    assert "Loaded the MAX plan: 70 records created" in first
    assert "already loaded: nothing changed" in second


def test_second_run_after_provisioning_and_the_local_proxmox_reports_no_difference():
    # Given a loaded plan whose agents provisioning started, whose CT100 the drift check read, and
    # whose host the local Proxmox re-pointed (manage.py local_proxmox --configure-host)
    max_plan_load()
    CliAgent.objects.update(status="running")
    Container.objects.filter(vmid=100).update(status="running")
    ProxmoxHost.objects.update(token_secret_env="", api_url="https://127.0.0.1:8106")

    # When the plan is loaded again
    report = max_plan_load()

    # Then the portal's own state is not a difference from the plan
    assert report.differences == []
    assert report.changed_nothing


def test_a_difference_shows_the_stored_values_not_enum_reprs():
    max_plan_load()
    Eidolon.objects.filter(slug="atlas").update(stage=None)

    report = max_plan_load()

    assert report.differences == ["eidolon Atlas: stage is None, the plan says 'DeliveryPM' (left as is)"]
