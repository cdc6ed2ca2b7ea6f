"""The SapWaves staff page and admin: what they show, and their buttons going through the services."""

from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from eidolons.models import Eidolon, EidolonSapWavePause, SapWave, SapWaveRun
from eidolons.sapwaves import services
from maxportal.kernel.actors import Actor

pytestmark = pytest.mark.django_db


@pytest.fixture
def waves(max_plan, staff_user):
    actor = Actor.for_user(staff_user, "test")
    berlin = services.sapwave_save(wave=SapWave(
        name="berlin-sync", kind="sync", prompt="sync", target_kind="eidolon",
        target_eidolon=Eidolon.objects.get(slug="lilly"), schedule_kind="crontab", cron_minute="0", cron_hour="8",
        timezone="Europe/Berlin"), actor=actor)
    past = services.sapwave_save(wave=SapWave(
        name="tonight", kind="one_off_task", prompt="delegate", target_kind="eidolon",
        target_eidolon=Eidolon.objects.get(slug="mach42v2"), schedule_kind="clocked",
        clocked_at=datetime(2025, 12, 4, 20, 30, tzinfo=UTC)), actor=actor)
    return berlin, past


def test_the_page_shows_each_wave_with_five_fire_times_in_utc_and_its_zone(staff_client, waves,
                                                                            django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        response = staff_client.get(reverse("sapwaves:board"))
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count("Europe/Berlin)") >= 5, "five fire times shown in the wave's zone beside UTC"
    assert "past one-off" in html
    assert "never ran" in html


def test_the_page_is_for_staff_only(client, waves, django_user_model):
    user = django_user_model.objects.create_user(username="sales", password="x-123-long-pass")
    client.force_login(user)
    assert client.get(reverse("sapwaves:board")).status_code == 302


def test_run_now_twice_from_the_page_fires_one_run(staff_client, waves, sent_tasks):
    berlin, _ = waves
    url = reverse("sapwaves:wave_action", args=[berlin.pk, "run"])
    first = staff_client.post(url, follow=True)
    second = staff_client.post(url, follow=True)
    assert first.status_code == 200 and SapWaveRun.objects.filter(wave=berlin).count() == 1
    assert "nothing sent twice" in second.content.decode()


def test_the_buttons_need_the_csrf_token(waves, staff_user):
    berlin, _ = waves
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    response = client.post(reverse("sapwaves:wave_action", args=[berlin.pk, "run"]))
    assert response.status_code == 403
    assert not SapWaveRun.objects.exists()


def test_pausing_from_the_page_without_a_reason_changes_nothing_and_says_why(staff_client, waves):
    berlin, _ = waves
    response = staff_client.post(reverse("sapwaves:wave_action", args=[berlin.pk, "pause"]), {"reason": ""},
                                 follow=True)
    assert "Say why" in response.content.decode()
    berlin.refresh_from_db()
    assert berlin.enabled is True
    staff_client.post(reverse("sapwaves:wave_action", args=[berlin.pk, "pause"]), {"reason": "holiday"})
    berlin.refresh_from_db()
    assert (berlin.enabled, berlin.paused_reason) == (False, "holiday")


def test_pausing_an_eidolon_and_all_waves_from_the_page(staff_client, waves):
    lilly = Eidolon.objects.get(slug="lilly")
    staff_client.post(reverse("sapwaves:eidolon_action", args=[lilly.pk, "pause"]), {"reason": "rebuild"})
    assert EidolonSapWavePause.objects.get().reason == "rebuild"
    staff_client.post(reverse("sapwaves:bulk_action", args=["pause"]), {"reason": "freeze"})
    assert not SapWave.objects.filter(enabled=True).exists()
    staff_client.post(reverse("sapwaves:bulk_action", args=["resume"]))
    assert not SapWave.objects.filter(enabled=False).exists()


def test_the_admin_lists_waves_and_an_edit_reaches_the_beat_entry(staff_client, waves):
    berlin, _ = waves
    listing = staff_client.get(reverse("admin:eidolons_sapwave_changelist"))
    assert listing.status_code == 200 and "berlin-sync" in listing.content.decode()
    change_url = reverse("admin:eidolons_sapwave_change", args=[berlin.pk])
    page = staff_client.get(change_url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "target_set"}
    data.update({"cron_minute": "15", "owner": "", "target_eidolon": berlin.target_eidolon_id, "target_agent": "",
                 "interval_minutes": "", "interval_anchor_0": "", "interval_anchor_1": "", "clocked_at_0": "",
                 "clocked_at_1": "", "expires_at_0": "", "expires_at_1": ""})
    response = staff_client.post(change_url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    assert PeriodicTask.objects.get(pk=berlin.periodic_task_id).crontab.minute == "15"
    history = staff_client.get(reverse("admin:eidolons_sapwave_history", args=[berlin.pk]))
    assert history.status_code == 200 and "operator" in history.content.decode()


def test_the_admin_shows_a_bad_crontab_on_its_field_and_saves_nothing(staff_client, waves):
    berlin, _ = waves
    change_url = reverse("admin:eidolons_sapwave_change", args=[berlin.pk])
    form = staff_client.get(change_url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "target_set"}
    data.update({"cron_minute": "75", "owner": "", "target_eidolon": berlin.target_eidolon_id, "target_agent": "",
                 "interval_minutes": ""})
    response = staff_client.post(change_url, data)
    assert response.status_code == 200
    assert "cron_minute" in response.context["adminform"].form.errors
    assert PeriodicTask.objects.get(pk=berlin.periodic_task_id).crontab.minute == "0"
