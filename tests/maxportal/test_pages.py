"""The base layout, login/logout, the overview page, local htmx and the API docs."""

import re

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_overview_lists_the_eidolons_and_capacity(staff_client, max_plan, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        response = staff_client.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    for name in ("LILLy", "Mike", "Clara", "Aria", "Finn", "Anya", "Atlas", "Mach42v2", "Maestro"):
        assert name in html
    assert "10.0.100.201/24" in html and "lilly@meetmike.pro" in html
    assert "20 cores allocated on 16 threads" in html


def test_base_layout_loads_htmx_locally_and_no_cdn(staff_client, max_plan):
    html = staff_client.get("/").content.decode()
    assert "/static/vendor/htmx-2.0.11.min.js" in html
    assert not re.search(r"""(src|href)=["']https?://""", html), "no asset may come from another host"
    assert finders.find("vendor/htmx-2.0.11.min.js"), "htmx is vendored under static/"


def test_the_overview_sends_an_anonymous_visitor_to_the_login_page(client, max_plan):
    """Issue 8 item 6: the overview shows internal addresses and mailboxes: not to the public."""
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next=/"


def test_htmx_is_served_by_whitenoise(client, settings):
    settings.WHITENOISE_USE_FINDERS = True
    response = client.get("/static/vendor/htmx-2.0.11.min.js")
    assert response.status_code == 200
    assert b"htmx" in b"".join(response.streaming_content)


def test_login_and_logout(client, db):
    UserFactory(username="ops", password="a-long-pass-123")
    response = client.post(reverse("login"), {"username": "ops", "password": "a-long-pass-123"})
    assert response.status_code == 302
    assert "ops" in client.get("/").content.decode()
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert "Log in" in client.get("/", follow=True).content.decode()


def test_login_with_a_wrong_password_says_so(client):
    response = client.post(reverse("login"), {"username": "nobody", "password": "wrong"})
    assert "did not match" in response.content.decode()


def test_api_docs_and_schema_are_served(client):
    assert client.get("/api/v1/docs").status_code == 200
    schema = client.get("/api/v1/openapi.json").json()
    assert schema["info"]["title"] == "maxportal API"
