"""The product look: the navigation shows only what the user may open, styled 404/403/500 pages,
the admin in the same tokens, one date format, no emoji glyphs, make run without debug pages."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.template.loader import render_to_string
from django.test import RequestFactory

from maxportal.templatetags.portal import duration_text, nav_links, when

from .test_settings import run_manage

pytestmark = pytest.mark.django_db
BASE_DIR = Path(__file__).resolve().parents[2]


def _nav_labels(html: str) -> list[str]:
    nav = html.split('aria-label="Main"', 1)[1].split("</nav>", 1)[0]
    return re.findall(r'<a href="[^"]+"[^>]*>([^<]+)</a>', nav)


def test_anonymous_navigation_offers_only_public_pages_and_log_in(client, max_plan):
    html = client.get("/accounts/login/").content.decode()
    assert _nav_labels(html) == ["API docs", "Log in"]


def test_a_signed_in_non_staff_user_sees_no_staff_links(client, django_user_model, max_plan):
    client.force_login(django_user_model.objects.create_user("visitor", password="x-pass-12345"))
    assert _nav_labels(client.get("/").content.decode()) == ["Overview", "Provisioning", "API docs"]


def test_staff_sees_every_link_and_each_one_opens(staff_client, max_plan):
    html = staff_client.get("/").content.decode()
    assert _nav_labels(html) == ["Overview", "Provisioning", "Board", "Funnel", "SapWaves", "API docs", "Admin"]
    for link in re.findall(r'<a href="(/[^"]*)"', html.split('aria-label="Main"', 1)[1].split("</nav>")[0]):
        assert staff_client.get(link).status_code == 200, link


def test_every_link_a_non_staff_user_is_shown_opens_for_them(client, django_user_model, max_plan):
    user = django_user_model.objects.create_user("visitor", password="x-pass-12345")
    client.force_login(user)
    request = RequestFactory().get("/")
    for link in nav_links(user, request.path):
        assert client.get(link["url"]).status_code == 200, link


def test_the_current_page_is_marked_in_the_navigation(staff_client, max_plan):
    html = staff_client.get("/provisioning/").content.decode()
    assert '<a href="/provisioning/" aria-current="page">Provisioning</a>' in html


def test_a_mistyped_url_gets_the_product_404_not_a_url_list(client):
    response = client.get("/no-such-page/")
    html = response.content.decode()
    assert response.status_code == 404
    assert "There is no page here" in html and "/static/css/portal.css" in html
    assert "URLconf" not in html and "[name=" not in html


def test_a_refused_page_is_the_styled_403_with_the_reason(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("visitor", password="x-pass-12345"))
    response = client.get("/leads/funnel/")
    html = response.content.decode()
    assert response.status_code == 403
    assert "This page is not open to you" in html and "staff" in html
    assert 'class="topbar"' in html


def test_the_500_page_renders_without_a_request_or_a_database():
    html = render_to_string("500.html")
    assert "Something went wrong on our side" in html and "portal.css" in html


def test_the_admin_uses_the_same_tokens(staff_client):
    html = staff_client.get("/admin/").content.decode()
    assert "/static/css/admin.css" in html and "back to the portal" in html
    admin_css = (BASE_DIR / "static/css/admin.css").read_text()
    portal_css = (BASE_DIR / "static/css/portal.css").read_text()
    assert '@import url("tokens.css")' in admin_css and '@import url("tokens.css")' in portal_css


def test_one_date_format_utc_with_a_machine_readable_datetime():
    moment = datetime(2026, 12, 1, 20, 17, 5, tzinfo=UTC)
    assert when(moment) == '<time datetime="2026-12-01T20:17:05+00:00">2026-12-01 20:17 UTC</time>'
    assert when(None) == ""


@pytest.mark.parametrize(("seconds", "text"), [
    (40, "40 s"), (300, "5 min"), (3 * 3600 + 300, "3 h 5 min"), (3 * 86400 + 4 * 3600, "3 d 4 h"),
    (timedelta(days=2).total_seconds(), "2 d"), (None, "—"),
])
def test_durations_show_the_two_largest_units(seconds, text):
    assert duration_text(seconds) == text


EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\u2300-\u23FF]")


def test_the_pages_use_no_emoji_glyphs():
    offenders = []
    for folder in ("templates/leads", "templates/_partials", "templates/admin", "static/css", "static/js"):
        for path in (BASE_DIR / folder).rglob("*"):
            if path.is_file() and EMOJI.search(path.read_text(encoding="utf-8")):
                offenders.append(str(path.relative_to(BASE_DIR)))
    for path in (BASE_DIR / "templates").glob("*.html"):
        if EMOJI.search(path.read_text(encoding="utf-8")):
            offenders.append(str(path.relative_to(BASE_DIR)))
    assert offenders == []


def test_make_run_settings_have_debug_off_and_work_over_plain_http():
    """The environment scripts/run.sh exports gives DEBUG off, no HTTPS redirect, cookies over HTTP."""
    script = (BASE_DIR / "scripts/run.sh").read_text()
    exported = dict(re.findall(r"export (DJANGO_\w+)=\$\{\w+:-(\w+)\}", script))
    assert exported == {"DJANGO_DEBUG": "0", "DJANGO_SECURE_SSL_REDIRECT": "0", "DJANGO_SECURE_COOKIES": "0",
                        "DJANGO_SECURE_HSTS_SECONDS": "0"}
    done = run_manage(
        "shell", "--no-imports", "-c",
        "from django.conf import settings as s; print(s.DEBUG, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE,"
        " s.CSRF_COOKIE_SECURE)",
        DJANGO_SECRET_KEY="k9-" + "Zx7!Qp2@Lm5#Rt8$Vn3%Bw6^Hy1&Jd4*" * 2, **exported,
    )
    assert done.stdout.split() == ["False", "False", "False", "False"], done.stderr


def test_a_staff_user_without_admin_permissions_is_not_offered_the_admin(client, django_user_model, max_plan):
    client.force_login(django_user_model.objects.create_user("sales", password="x-pass-12345", is_staff=True))
    labels = _nav_labels(client.get("/leads/board/").content.decode())
    assert "Board" in labels and "Admin" not in labels
