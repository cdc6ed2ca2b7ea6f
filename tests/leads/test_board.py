"""The board and the lead page: cards, rot, filters, moves through the stage machine, the timeline."""

import re

import pytest
from django.utils import timezone

from eidolons.models import Eidolon, SapWave, Signal
from eidolons.sapwaves.services import eidolon_sapwaves_pause, sapwave_save
from leads import services
from leads.board import CARDS_PER_STAGE
from leads.models import Lead, LeadNote, StageSetting, StageTransition
from maxportal.kernel.actors import Actor

from .ledger import DAY, HOUR, ledger_lead

pytestmark = pytest.mark.django_db
BOARD = "/leads/board/"


@pytest.fixture
def pipeline(max_plan):
    fresh = ledger_lead("Fresh GmbH", [("ingest", "LeadGen", "in_progress", 2 * HOUR, "new")])
    old = ledger_lead("Dusty AG", [("ingest", "LeadGen", "in_progress", 9 * DAY, "new"),
                                   ("handoff", "FirstResponder", "in_progress", 5 * DAY, "qualified")],
                      source="email")
    hot = ledger_lead("Hot Ltd", [("ingest", "LeadGen", "in_progress", 3 * DAY, "new"),
                                  ("handoff", "FirstResponder", "in_progress", 2 * DAY, "ok"),
                                  ("escalate", "FirstResponder", "escalated", DAY, "wants a discount")])
    Lead.objects.filter(pk=hot.pk).update(contact_name="Hanna Heiss", email="hanna@hot.example")
    ledger_lead("Done SA", [("ingest", "LeadGen", "in_progress", 3 * DAY, "new"),
                            ("fail", "LeadGen", "failed", 2 * DAY, "no budget")])
    return {"fresh": fresh, "old": old, "hot": hot}


def _cards(response) -> dict[str, list[str]]:
    return {c["stage"].value: [lead.company for lead in c["cards"]] for c in response.context["columns"]}


def test_the_board_has_a_column_per_stage_and_a_card_per_open_lead(staff_client, pipeline,
                                                                   django_assert_max_num_queries):
    with django_assert_max_num_queries(10):
        response = staff_client.get(BOARD)
    assert response.status_code == 200
    cards = _cards(response)
    assert list(cards) == ["LeadGen", "FirstResponder", "Scoping", "Orchestra", "Closer", "Onboarding", "DeliveryPM"]
    assert cards["LeadGen"] == ["Fresh GmbH"] and cards["FirstResponder"] == ["Dusty AG", "Hot Ltd"]
    html = response.content.decode()
    assert "Done SA" not in html, "closed leads are not on the board"
    assert "Mike" in html and "Escalated" in html


def test_query_count_does_not_grow_with_the_leads(staff_client, pipeline, django_assert_max_num_queries):
    for i in range(30):
        ledger_lead(f"More {i}", [("ingest", "LeadGen", "in_progress", HOUR, "new")])
    with django_assert_max_num_queries(10):
        response = staff_client.get(BOARD + "?stale=on&q=o")
    assert response.status_code == 200


def _card(response, company):
    return next(lead for c in response.context["columns"] for lead in c["cards"] if lead.company == company)


def _wave_for(slug: str, name: str = "Mike check") -> SapWave:
    """A wave waking one Eidolon every 15 minutes (UTC crontab)."""
    return sapwave_save(wave=SapWave(name=name, kind="progress_check", prompt="check", target_kind="eidolon",
                                     target_eidolon=Eidolon.objects.get(slug=slug), schedule_kind="crontab",
                                     cron_minute="*/15", timezone="UTC"), actor=Actor.for_system("test"))


def test_a_lead_past_its_stage_threshold_is_stale_and_says_nothing_is_scheduled(staff_client, pipeline):
    SapWave.objects.all().delete()  # the plan's waves: none for this test
    StageSetting.objects.filter(stage="FirstResponder").update(stale_after_hours=72)
    response = staff_client.get(BOARD)
    dusty, hot = _card(response, "Dusty AG"), _card(response, "Hot Ltd")
    assert dusty.rot.stale and not hot.rot.stale
    html = response.content.decode()
    assert "stale 2 d, nothing scheduled" in html
    assert "stale in 23 h" in html and "nothing scheduled before then" in html, "Hot Ltd is at risk"


def test_a_stale_card_names_the_next_wave_for_its_owner(staff_client, pipeline):
    SapWave.objects.all().delete()
    StageSetting.objects.filter(stage="FirstResponder").update(stale_after_hours=72)
    _wave_for("mike")
    response = staff_client.get(BOARD)
    dusty, hot = _card(response, "Dusty AG"), _card(response, "Hot Ltd")
    assert dusty.rot.stale and dusty.rot.scheduled.label == "next wave for Mike (Mike check)"
    assert not hot.rot.at_risk, "a wave wakes Mike before Hot Ltd's threshold runs out"
    assert re.search(r"stale 2 d, next wave for Mike \(Mike check\) in (\d+ min|\d+ s)", response.content.decode())


def test_a_paused_eidolon_is_woken_by_no_wave(staff_client, staff_user, pipeline):
    SapWave.objects.all().delete()
    _wave_for("mike")
    eidolon_sapwaves_pause(eidolon=Eidolon.objects.get(slug="mike"), actor=Actor.for_user(staff_user),
                           reason="holiday")
    assert _card(staff_client.get(BOARD), "Dusty AG").rot.scheduled is None


def test_the_plans_waves_wake_the_owners(staff_client, pipeline):
    assert _card(staff_client.get(BOARD), "Dusty AG").rot.scheduled is not None, "the 12-minute check wakes Mike"


def test_stale_only_keeps_the_stale_cards(staff_client, pipeline):
    StageSetting.objects.filter(stage="FirstResponder").update(stale_after_hours=72)
    cards = _cards(staff_client.get(BOARD + "?stale=on"))
    assert [c for col in cards.values() for c in col] == ["Dusty AG"]


@pytest.mark.parametrize(("query", "expected"), [
    ("?status=escalated", ["Hot Ltd"]),
    ("?stage=LeadGen", ["Fresh GmbH"]),
    ("?owner=mike", ["Dusty AG", "Hot Ltd"]),
    ("?source=email", ["Dusty AG"]),
    ("?q=hanna", ["Hot Ltd"]),
    ("?q=HOT.EXAMPLE", ["Hot Ltd"]),
    ("?q=fresh", ["Fresh GmbH"]),
])
def test_filters_and_search(staff_client, pipeline, query, expected):
    cards = _cards(staff_client.get(BOARD + query))
    assert [c for col in cards.values() for c in col] == expected


def test_a_filter_that_means_nothing_is_refused_saying_so(staff_client, pipeline):
    response = staff_client.get(BOARD + "?owner=mach42v2")
    assert response.status_code == 400
    assert "These filters mean nothing here: Owner: Select a valid choice" in response.content.decode()
    assert all(cards == [] for cards in _cards(response).values())


def test_an_htmx_filter_gets_the_board_fragment(staff_client, pipeline):
    response = staff_client.get(BOARD + "?q=hot", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert b"<html" not in response.content and b"Hot Ltd" in response.content and b"Dusty" not in response.content


def test_a_move_from_the_board_goes_through_the_stage_machine(staff_client, pipeline):
    lead = pipeline["fresh"]
    response = staff_client.post(f"/leads/{lead.pk}/move/", {"move": "handoff", "from": "board", "query": "q=fresh"},
                                 headers={"HX-Request": "true"})
    assert response.status_code == 200
    lead.refresh_from_db()
    assert lead.stage == "FirstResponder"
    last = StageTransition.objects.filter(lead=lead).latest("created_at")
    assert last.move == "handoff" and last.actor_user.username == "operator"
    assert Signal.objects.filter(lead=lead, signal_type="PIPELINE_TRANSITION", recipient__slug="mike").exists()
    assert "Fresh GmbH: hand off to the next stage done" in response.content.decode()


def test_a_refused_move_shows_the_409_message_and_changes_nothing(staff_client, pipeline):
    lead = pipeline["hot"]  # escalated: no handoff
    response = staff_client.post(f"/leads/{lead.pk}/move/", {"move": "handoff", "from": "board"},
                                 headers={"HX-Request": "true"})
    assert response.status_code == 409
    assert "Cannot handoff: the lead is in FirstResponder with status escalated" in response.content.decode()
    lead.refresh_from_db()
    assert lead.status == "escalated"


def test_a_move_without_its_reason_is_a_422_naming_it(staff_client, pipeline):
    response = staff_client.post(f"/leads/{pipeline['fresh'].pk}/move/", {"move": "fail", "from": "board"})
    assert response.status_code == 422
    assert "fail needs a reason" in response.content.decode()


def test_moves_are_posts_for_staff_only(client, django_user_model, pipeline):
    url = f"/leads/{pipeline['fresh'].pk}/move/"
    assert client.post(url, {"move": "handoff"}).status_code == 302, "anonymous: to the login page"
    client.force_login(django_user_model.objects.create_user("visitor", password="x-pass-12345"))
    assert client.post(url, {"move": "handoff"}).status_code == 403
    assert client.get(BOARD).status_code == 403
    assert Lead.objects.get(pk=pipeline["fresh"].pk).stage == "LeadGen"


def test_the_lead_page_shows_header_moves_and_the_timeline(staff_client, staff_user, pipeline,
                                                           django_assert_max_num_queries):
    lead = pipeline["hot"]
    services.lead_note_add(lead_id=lead.pk, actor=Actor.for_user(staff_user), text="Called Hanna: decides Friday")
    with django_assert_max_num_queries(13):
        response = staff_client.get(f"/leads/{lead.pk}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert [m for m, _ in response.context["moves"]] == ["resolve", "fail", "reassign"]
    kinds = [e.kind for e in response.context["timeline"]]
    assert kinds[0] == "note" and kinds.count("transition") == 3
    assert "wants a discount" in html and "Called Hanna: decides Friday" in html and "Mike" in html
    assert "/admin/leads/lead/" not in html, "no link opens the admin change form"


def test_resolving_from_the_lead_page_redirects_with_the_notice(staff_client, pipeline):
    lead = pipeline["hot"]
    response = staff_client.post(f"/leads/{lead.pk}/move/", {"move": "resolve", "from": "page"}, follow=True)
    assert response.status_code == 200
    assert "now FirstResponder, in_progress" in response.content.decode()
    lead.refresh_from_db()
    assert lead.status == "in_progress"


def test_a_refused_move_on_the_lead_page_is_a_409_with_the_message(staff_client, pipeline):
    response = staff_client.post(f"/leads/{pipeline['hot'].pk}/move/", {"move": "complete", "from": "page"})
    assert response.status_code == 409
    assert "Cannot complete" in response.content.decode()


def test_a_note_is_added_and_an_empty_one_refused(staff_client, pipeline):
    lead = pipeline["fresh"]
    assert staff_client.post(f"/leads/{lead.pk}/note/", {"text": "first call booked"}).status_code == 302
    assert LeadNote.objects.get(lead=lead).text == "first call booked"
    response = staff_client.post(f"/leads/{lead.pk}/note/", {"text": "  "})
    assert response.status_code == 422 and "cannot be empty" in response.content.decode()


def test_an_unknown_lead_is_the_404_page(staff_client, max_plan):
    response = staff_client.get("/leads/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404 and "There is no page here" in response.content.decode()


def test_a_lead_page_timeline_lists_signals_with_delivery_and_ack(staff_client, staff_user, max_plan):
    lead, _ = services.lead_ingest(actor=Actor.for_user(staff_user), company="Sig Co", email="s@sig.example")
    Signal.objects.filter(lead=lead).update(delivered_at=timezone.now(), acknowledged_at=timezone.now(),
                                            delivery_count=1)
    titles = [e.title for e in staff_client.get(f"/leads/{lead.pk}/").context["timeline"]]
    assert any(t.startswith("PIPELINE_TRANSITION delivered to LILLy") for t in titles)
    assert "PIPELINE_TRANSITION acknowledged" in titles


def test_a_long_column_shows_its_oldest_cards_and_how_many_more(staff_client, max_plan):
    for i in range(CARDS_PER_STAGE + 2):
        ledger_lead(f"Bulk {i:02d}", [("ingest", "LeadGen", "in_progress", (100 - i) * HOUR, "new")])
    response = staff_client.get(BOARD)
    column = response.context["columns"][0]
    assert column["count"] == CARDS_PER_STAGE + 2 and column["more"] == 2
    assert column["cards"][0].company == "Bulk 00", "oldest in stage first"
    assert "and 2 more: narrow the filters or search." in response.content.decode()
