"""Drift: what Proxmox says against what the records say, read by a periodic task, idempotently."""

import pytest
from django.urls import reverse

from provisioning import tasks
from provisioning.drift import drift_check
from provisioning.models import ChecklistStep, Container, Drift
from provisioning.services import checklist_ensure_all


@pytest.fixture
def node(max_plan, pve_host, pve_server, pve_client):
    """CT100 (pre-existing) and CT201 (provisioned by the portal) on the local Proxmox."""
    checklist_ensure_all()
    pve_server.seed_containers([{"vmid": 100, "hostname": "mach42v2", "cores": 6, "memory_mb": 24576}])
    ct201 = Container.objects.get(vmid=201)
    pve_client.wait_task(pve_client.create_container(ct201), timeout=10)
    ChecklistStep.objects.filter(container=ct201, step="lxc_created").update(state="done")
    return pve_host


def _open(kind=None):
    drifts = Drift.objects.filter(resolved_at__isnull=True)
    return drifts.filter(kind=kind) if kind else drifts


def test_a_node_that_matches_the_records_has_no_drift_and_the_status_is_read(node):
    report = drift_check(host=node)
    assert report.error == "" and report.found == []
    ct201 = Container.objects.get(vmid=201)
    assert ct201.status == "stopped" and ct201.last_synced_at is not None
    assert Container.objects.get(vmid=100).status == "running"
    assert Container.objects.get(vmid=202).status == "planned", "not created yet: not missing either"


def test_memory_changed_outside_the_portal_is_flagged_once_and_resolved_when_it_is_back(node, pve_client):
    pve_client.set_config(201, memory=8192)
    drift_check(host=node)
    drift_check(host=node)  # beat may fire twice: still one finding
    (drift,) = _open()
    assert (drift.vmid, drift.kind, drift.expected, drift.actual) == (201, "memory", "4096 MiB", "8192 MiB")
    assert drift.last_seen_at >= drift.detected_at
    pve_client.set_config(201, memory=4096)
    report = drift_check(host=node)
    assert report.resolved == 1 and not _open().exists()
    assert Drift.objects.get(pk=drift.pk).resolved_at is not None


def test_a_provisioned_container_missing_on_the_host_is_flagged(node):
    ChecklistStep.objects.filter(container__vmid=202, step="lxc_created").update(state="done")
    report = drift_check(host=node)
    assert _open("missing").get().vmid == 202
    assert Container.objects.get(vmid=202).status == "missing"
    assert any("CT202" in line and "missing" in line.lower() for line in report.found)


def test_an_unknown_container_on_the_host_is_flagged(node, pve_server):
    pve_server.seed_containers([{"vmid": 250, "hostname": "web-test", "cores": 1, "memory_mb": 512}])
    drift_check(host=node)
    unknown = _open("unknown").get()
    assert unknown.vmid == 250 and unknown.container is None and unknown.actual == "web-test"


def test_an_unreachable_host_changes_nothing_and_says_so(node, pve):
    pve.set_node_offline("ax42")
    report = drift_check(host=node)
    assert "could not be read" in report.error
    assert not Drift.objects.exists()
    assert Container.objects.get(vmid=201).last_synced_at is None


def test_the_periodic_task_checks_every_host(node, pve_client):
    pve_client.set_config(201, cores=4)
    lines = tasks.drift_check()
    assert lines == ["ax42: 1 finding(s)"]
    assert _open("cores").get().actual == "4"


def test_the_page_shows_drift(node, pve_client, pve_server, staff_client):
    pve_client.set_config(201, memory=8192)
    pve_server.seed_containers([{"vmid": 250, "hostname": "web-test", "cores": 1, "memory_mb": 512}])
    drift_check(host=node)
    html = staff_client.get(reverse("provisioning:grid")).content.decode()
    assert "drift: 1" in html and "Unknown on the host: ax42 CT250 'web-test'" in html
    ct201 = Container.objects.get(vmid=201)
    page = staff_client.get(reverse("provisioning:container_detail", args=[ct201.pk])).content.decode()
    assert "Memory changed outside the portal: record 4096 MiB, Proxmox 8192 MiB" in page


def test_drift_check_from_the_page_is_staff_only(node, client, django_user_model):
    user = django_user_model.objects.create_user(username="viewer", password="viewer-pass-123")
    client.force_login(user)
    assert client.post(reverse("provisioning:host_drift_check", args=[node.pk])).status_code == 403


def test_a_provisioned_container_found_stopped_is_flagged(node):
    ChecklistStep.objects.filter(container__vmid=201, step="services_running").update(state="done")
    drift_check(host=node)
    status = _open("status").get()
    assert (status.vmid, status.expected, status.actual) == (201, "running", "stopped")
