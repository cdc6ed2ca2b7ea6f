"""The product look's template helpers: the navigation (who may open what), one date format, durations.

The navigation is data (``NAV``): each entry names its URL and the rule a user must pass to open
it, and base.html shows only the entries the user passes, so a link never leads to a 403. Views
keep their own checks; these rules mirror them (tests/maxportal/test_look.py checks both agree).

Dates: one format everywhere, UTC (``2026-12-01 20:17 UTC``), in a ``<time>`` element whose
``title`` static/js/portal.js fills with the reader's local time.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

register = template.Library()

DATE_FORMAT = "%Y-%m-%d %H:%M UTC"


@dataclass(frozen=True)
class NavEntry:
    label: str
    url_name: str
    rule: str  # "anyone", "login" (any signed-in user), "staff", "admin" (staff with something to edit there)


def _passes(user, rule: str) -> bool:
    if rule == "anyone":
        return True
    if not user.is_authenticated:
        return False
    if rule == "admin":  # the admin opens for any staff user but shows nothing without permissions
        return user.is_staff and (user.is_superuser or bool(user.get_all_permissions()))
    return rule == "login" or (rule == "staff" and user.is_staff)


NAV = (
    NavEntry("Overview", "home", "login"),
    NavEntry("Provisioning", "provisioning:grid", "login"),
    NavEntry("Board", "leads:board", "staff"),
    NavEntry("Funnel", "leads:funnel", "staff"),
    NavEntry("SapWaves", "sapwaves:board", "staff"),
    NavEntry("API docs", "api:openapi-view", "anyone"),
    NavEntry("Admin", "admin:index", "admin"),
)


def nav_links(user, path: str) -> list[dict]:
    """The entries ``user`` may open, each with its URL and whether it is the current page."""
    links = []
    for entry in NAV:
        if not _passes(user, entry.rule):
            continue
        url = reverse(entry.url_name)
        current = path == url if url == "/" else path.startswith(url)
        links.append({"label": entry.label, "url": url, "current": current})
    return links


@register.inclusion_tag("_partials/nav.html", takes_context=True)
def portal_nav(context):
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None:  # the 500 page renders without a request user
        return {"links": [], "user": None, "request": request}
    return {"links": nav_links(user, request.path), "user": user, "request": request,
            "csrf_token": context.get("csrf_token")}


@register.filter
def when(value):
    """A datetime as ``<time>`` in the one format (UTC); empty for None."""
    if not isinstance(value, datetime):
        return "" if value in (None, "") else value
    utc = value.astimezone(UTC) if timezone.is_aware(value) else value
    return format_html('<time datetime="{}">{}</time>', utc.isoformat(), utc.strftime(DATE_FORMAT))


def duration_text(seconds: float | None) -> str:
    """Seconds as the largest two units that matter: ``3 d 4 h``, ``2 h 5 min``, ``40 s``."""
    if seconds is None:
        return "—"
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


@register.filter
def duration(value):
    """A timedelta or a number of seconds, as ``duration_text``."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    return duration_text(value)


@register.filter
def since(value):
    """How long ago a datetime was, as ``duration_text``."""
    if not isinstance(value, datetime):
        return "—"
    return duration_text((timezone.now() - value).total_seconds())


@register.filter
def pct(value, digits: int = 0):
    """A share (0..1) as a percentage; "—" when there is nothing to divide by."""
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.{int(digits)}f}%"


@register.filter
def until(value):
    """How long until a datetime, as ``duration_text`` (0 s once it has passed)."""
    if not isinstance(value, datetime):
        return "—"
    return duration_text((value - timezone.now()).total_seconds())
