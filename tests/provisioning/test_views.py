"""The provisioning page: the grid, live polling, the actions, permissions, CSRF and query budgets."""

import pytest
from django.test import Client
from django.urls import reverse

from provisioning.models import ChecklistEvent, ChecklistStep, Container, StepRun


@pytest.fixture
def viewer_client(client, django_user_model):
    user = django_user_model.objects.create_user(username="viewer", password="viewer-pass-123")
    client.force_login(user)
    return client


def _state(container, step):
    return ChecklistStep.objects.get(container=container, step=step).state


def _change_urls(container):
    host = container.host
    return [
        reverse("provisioning:step_action", args=[container.pk, "m365_account", "tick"]),
        reverse("provisioning:step_action", args=[container.pk, "m365_account", "untick"]),
        reverse("provisioning:step_action", args=[container.pk, "m365_account", "skip"]),
        reverse("provisioning:step_action", args=[container.pk, "lxc_created", "run"]),
        reverse("provisioning:container_provision", args=[container.pk]),
        reverse("provisioning:host_provision", args=[host.pk]),
        reverse("provisioning:host_drift_check", args=[host.pk]),
    ]


def test_the_grid_shows_ten_rows_and_a_column_per_managed_container(staff_client, plan):
    response = staff_client.get(reverse("provisioning:grid"))
    assert response.status_code == 200
    html = response.content.decode()
    for label in ("M365 Account", "LXC Created", "Base Config", "CLIs Installed", "Systemd Setup", "Signal Dir",
                  "Auth Complete", "Repo Cloned", "Services Running", "Test Signal"):
        assert label in html
    for vmid in range(201, 208):
        assert f"CT{vmid}" in html
    assert "CT100" not in html, "CT100 is not managed: no checklist column"
    assert html.count('class="cell state-') == 70
    assert html.count('class="cell state-pending ready') == 7 * 3, "M365, LXC and auth are ready everywhere"
    assert 'hx-trigger="every 2s"' not in html, "nothing runs: no polling"


def test_the_grid_costs_the_same_queries_for_seven_containers_as_for_one(
    staff_client, plan, django_assert_max_num_queries
):
    with django_assert_max_num_queries(12) as seven:
        staff_client.get(reverse("provisioning:grid"))
    Container.objects.filter(vmid__gt=201).update(managed=False)
    with django_assert_max_num_queries(12) as one:
        staff_client.get(reverse("provisioning:grid"))
    assert len(seven.captured_queries) == len(one.captured_queries)


def test_a_poll_while_a_step_runs_keeps_polling_and_stops_with_286_when_nothing_runs(staff_client, ct201):
    ChecklistStep.objects.filter(container=ct201, step="lxc_created").update(state="running")
    running = staff_client.get(reverse("provisioning:grid") + "?poll=1", HTTP_HX_REQUEST="true")
    assert running.status_code == 200
    assert 'hx-trigger="every 2s"' in running.content.decode()
    assert "state-running" in running.content.decode()
    ChecklistStep.objects.filter(container=ct201, step="lxc_created").update(state="done")
    settled = staff_client.get(reverse("provisioning:grid") + "?poll=1", HTTP_HX_REQUEST="true")
    assert settled.status_code == 286, "HTMX stops polling on 286"
    assert "state-done" in settled.content.decode()


def test_a_boosted_htmx_request_gets_the_whole_page_not_the_fragment(staff_client, ct201):
    # hx-boost navigation swaps the whole body: it must get the page (with its layout), as a plain GET does
    boosted = staff_client.get(reverse("provisioning:grid"), HTTP_HX_REQUEST="true", HTTP_HX_BOOSTED="true")
    fragment = staff_client.get(reverse("provisioning:grid"), HTTP_HX_REQUEST="true")
    assert boosted.status_code == 200
    assert "<html" in boosted.content.decode() and "<html" not in fragment.content.decode()


def test_staff_ticks_a_manual_step_with_a_click_and_it_is_audited(staff_client, staff_user, ct201):
    url = reverse("provisioning:step_action", args=[ct201.pk, "m365_account", "tick"])
    response = staff_client.post(url, {"note": "licence assigned"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert _state(ct201, "m365_account") == "done"
    event = ChecklistEvent.objects.get(container=ct201, step="m365_account")
    assert event.actor == staff_user and event.to_state == "done"
    assert "ticked" in response.content.decode()


def test_unticking_from_the_page_needs_a_reason(staff_client, ct201):
    staff_client.post(reverse("provisioning:step_action", args=[ct201.pk, "auth_complete", "tick"]))
    url = reverse("provisioning:step_action", args=[ct201.pk, "auth_complete", "untick"])
    refused = staff_client.post(url, {"reason": "", "from": "panel"}, HTTP_HX_REQUEST="true")
    assert "needs a reason" in refused.content.decode()
    assert _state(ct201, "auth_complete") == "done"
    staff_client.post(url, {"reason": "gemini login expired", "from": "panel"}, HTTP_HX_REQUEST="true")
    assert _state(ct201, "auth_complete") == "pending"
    assert ChecklistEvent.objects.filter(container=ct201, reason="gemini login expired").exists()


def test_run_queues_an_automated_step_and_the_grid_polls(staff_client, ct201):
    response = staff_client.post(reverse("provisioning:step_action", args=[ct201.pk, "lxc_created", "run"]),
                                 HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert _state(ct201, "lxc_created") == "running"
    assert StepRun.objects.filter(step__container=ct201, state="running").count() == 1
    assert 'hx-trigger="every 2s"' in response.content.decode()


def test_a_refused_action_says_why_and_changes_nothing(staff_client, ct201):
    response = staff_client.post(reverse("provisioning:step_action", args=[ct201.pk, "base_config", "run"]),
                                 HTTP_HX_REQUEST="true")
    assert "needs LXC Created done first" in response.content.decode()
    assert _state(ct201, "base_config") == "pending"


def test_without_htmx_an_action_redirects_back_with_a_message(staff_client, ct201):
    response = staff_client.post(reverse("provisioning:step_action", args=[ct201.pk, "m365_account", "tick"]),
                                 follow=True)
    assert response.redirect_chain[-1][0] == reverse("provisioning:grid")
    assert "ticked" in response.content.decode()


def test_provision_all_per_container_and_per_host(staff_client, ct201):
    staff_client.post(reverse("provisioning:container_provision", args=[ct201.pk]), HTTP_HX_REQUEST="true")
    assert _state(ct201, "lxc_created") == "running"
    staff_client.post(reverse("provisioning:host_provision", args=[ct201.host.pk]), HTTP_HX_REQUEST="true")
    assert ChecklistStep.objects.filter(step="lxc_created", state="running").count() == 7


def test_the_cell_panel_shows_log_script_and_history(staff_client, ct201):
    ChecklistStep.objects.filter(container=ct201, step="lxc_created").update(output_tail="TASK OK")
    response = staff_client.get(reverse("provisioning:step_detail", args=[ct201.pk, "lxc_created"]),
                                HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert "TASK OK" in html
    assert "pct create 201" in html and "--hostname lilly" in html and "keyctl=1" in html
    base = staff_client.get(reverse("provisioning:step_detail", args=[ct201.pk, "base_config"]),
                            HTTP_HX_REQUEST="true").content.decode()
    assert "pct exec" in base or "in CT201" in base
    assert "Node" in base or "nodesource" in base.lower()


def test_the_container_page_shows_the_audit_trail(staff_client, ct201):
    staff_client.post(reverse("provisioning:step_action", args=[ct201.pk, "m365_account", "tick"]))
    html = staff_client.get(reverse("provisioning:container_detail", args=[ct201.pk])).content.decode()
    assert "Audit trail" in html and "pending → done" in html and "operator" in html


@pytest.mark.parametrize("index", range(7))
def test_non_staff_get_403_on_every_change(viewer_client, ct201, index):
    url = _change_urls(ct201)[index]
    response = viewer_client.post(url, {"reason": "x"})
    assert response.status_code == 403
    assert not ChecklistEvent.objects.exists() and not StepRun.objects.exists()


def test_non_staff_may_look_but_see_no_buttons(viewer_client, ct201):
    html = viewer_client.get(reverse("provisioning:grid")).content.decode()
    assert "CT201" in html and "Provision all" not in html
    panel = viewer_client.get(reverse("provisioning:step_detail", args=[ct201.pk, "m365_account"])).content.decode()
    assert "Tick as done" not in panel


def test_anonymous_users_are_sent_to_log_in(client, ct201):
    assert client.get(reverse("provisioning:grid")).status_code == 302
    response = client.post(_change_urls(ct201)[0])
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert _state(ct201, "m365_account") == "pending"


def test_every_change_needs_the_csrf_token(staff_user, ct201):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    for url in _change_urls(ct201):
        assert client.post(url, {"reason": "x"}).status_code == 403, url
    assert not ChecklistEvent.objects.exists()
    # The page carries the token for forms and for htmx
    html = client.get(reverse("provisioning:grid")).content.decode()
    assert "csrfmiddlewaretoken" in html and "X-CSRFToken" in html


def test_changes_are_posts_only(staff_client, ct201):
    assert staff_client.get(_change_urls(ct201)[0]).status_code == 405


def test_the_page_warns_which_steps_need_root_when_the_host_has_no_root_channel(staff_client, ct201):
    ct201.host.root_channel = "none"
    ct201.host.save()
    html = staff_client.get(reverse("provisioning:grid")).content.decode()
    assert "No root@pam channel" in html and "keyctl=1" in html and "mp0 bind mount" in html
    ct201.host.root_channel = "ticket"
    ct201.host.save()
    assert "No root@pam channel" not in staff_client.get(reverse("provisioning:grid")).content.decode()


def test_the_cell_panel_polls_while_its_step_runs_and_stops_with_286(staff_client, ct201):
    ChecklistStep.objects.filter(container=ct201, step="lxc_created").update(state="running")
    url = reverse("provisioning:step_detail", args=[ct201.pk, "lxc_created"]) + "?poll=1"
    running = staff_client.get(url, HTTP_HX_REQUEST="true")
    assert running.status_code == 200 and 'hx-trigger="every 2s"' in running.content.decode()
    ChecklistStep.objects.filter(container=ct201, step="lxc_created").update(state="done")
    assert staff_client.get(url, HTTP_HX_REQUEST="true").status_code == 286
