"""Admin actions change the checklist through the same services as the page (checked and audited)."""

from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from provisioning.models import ChecklistEvent, ChecklistStep, Container, StepRun

CHANGELIST = "admin:provisioning_checkliststep_changelist"


def _cells(step, vmids=(201, 202)):
    return list(ChecklistStep.objects.filter(step=step, container__vmid__in=vmids).values_list("pk", flat=True))


def _act(client, action, pks, **extra):
    return client.post(reverse(CHANGELIST), {"action": action, ACTION_CHECKBOX_NAME: pks, **extra}, follow=True)


def test_tick_action_ticks_manual_steps_as_the_admin_user(staff_client, staff_user, plan):
    response = _act(staff_client, "tick_steps", _cells("m365_account"))
    assert response.status_code == 200
    assert set(ChecklistStep.objects.filter(pk__in=_cells("m365_account")).values_list("state", flat=True)) == {"done"}
    events = ChecklistEvent.objects.filter(step="m365_account")
    assert events.count() == 2 and {e.actor for e in events} == {staff_user}
    assert all("admin" in e.actor_label for e in events)


def test_tick_action_refuses_automated_steps_with_the_services_message(staff_client, plan):
    response = _act(staff_client, "tick_steps", _cells("lxc_created"))
    assert "is automated" in response.content.decode()
    assert not ChecklistEvent.objects.exists()


def test_run_action_queues_automated_steps(staff_client, plan):
    _act(staff_client, "run_steps", _cells("lxc_created"))
    assert StepRun.objects.filter(state="running").count() == 2


def test_untick_action_asks_for_a_reason_first(staff_client, plan):
    _act(staff_client, "tick_steps", _cells("auth_complete"))
    pks = _cells("auth_complete")
    form = _act(staff_client, "untick_steps", pks)
    assert "Reason" in form.content.decode()
    assert set(ChecklistStep.objects.filter(pk__in=pks).values_list("state", flat=True)) == {"done"}
    empty = _act(staff_client, "untick_steps", pks, confirmed="1", reason=" ")
    assert "A reason is required" in empty.content.decode()
    _act(staff_client, "untick_steps", pks, confirmed="1", reason="re-login needed")
    assert set(ChecklistStep.objects.filter(pk__in=pks).values_list("state", flat=True)) == {"pending"}
    assert ChecklistEvent.objects.filter(reason="re-login needed").count() == 2


def test_container_provision_action(staff_client, plan):
    pks = list(Container.objects.filter(vmid__in=[201, 203]).values_list("pk", flat=True))
    staff_client.post(reverse("admin:provisioning_container_changelist"),
                      {"action": "provision_containers", ACTION_CHECKBOX_NAME: pks}, follow=True)
    assert set(StepRun.objects.values_list("step__container__vmid", flat=True)) == {201, 203}


def test_the_state_cannot_be_edited_directly_and_events_cannot_be_changed(staff_client, plan):
    cell = ChecklistStep.objects.get(container__vmid=201, step="m365_account")
    url = reverse("admin:provisioning_checkliststep_change", args=[cell.pk])
    management = {"runs-TOTAL_FORMS": 0, "runs-INITIAL_FORMS": 0, "runs-MIN_NUM_FORMS": 0, "runs-MAX_NUM_FORMS": 1000}
    response = staff_client.post(url, {"note": "waiting for licence", "state": "done", **management})
    assert response.status_code == 302
    cell.refresh_from_db()
    assert cell.state == "pending" and cell.note == "waiting for licence"
    assert ChecklistEvent.objects.get().reason == "note: waiting for licence"
    event = ChecklistEvent.objects.get()
    assert staff_client.post(reverse("admin:provisioning_checklistevent_delete", args=[event.pk]),
                             {"post": "yes"}).status_code == 403


def test_non_staff_cannot_reach_the_admin_actions(client, django_user_model, plan):
    user = django_user_model.objects.create_user(username="viewer", password="viewer-pass-123")
    client.force_login(user)
    response = _act(client, "tick_steps", _cells("m365_account"))
    assert "/admin/login/" in response.redirect_chain[-1][0]
    assert not ChecklistEvent.objects.exists()


def test_the_checklist_changelist_has_a_query_budget(staff_client, plan, django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        assert staff_client.get(reverse(CHANGELIST)).status_code == 200


def test_snapshot_action_is_refused_for_a_container_with_the_signal_bind_mount(
    max_plan, pve_host, pve_client, staff_client
):
    ct201 = Container.objects.get(vmid=201)
    ct202 = Container.objects.get(vmid=202)
    for container in (ct201, ct202):
        pve_client.wait_task(pve_client.create_container(container), timeout=10)
    pve_client.bind_mount(201, "/var/lib/vz/shared", "/mnt/shared")
    response = staff_client.post(reverse("admin:provisioning_container_changelist"),
                                 {"action": "snapshot_containers", ACTION_CHECKBOX_NAME: [ct201.pk, ct202.pk]},
                                 follow=True)
    html = response.content.decode()
    assert "CT201 cannot be snapshotted" in html and "bind mount" in html
    assert "CT202: snapshot task UPID:ax42:" in html
    assert pve_client.list_snapshots(201) == []
    assert [s["name"][:7] for s in pve_client.list_snapshots(202)] == ["portal-"]
