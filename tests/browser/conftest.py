"""Real-browser tests: Playwright for Python driving Debian's Chromium (never a downloaded browser).

Chromium is launched by its path, headless, with everything that would reach the network off.
The tests skip, saying why, only where /usr/bin/chromium is absent (scripts/ensure-system-deps.sh
installs it when run as root). Screenshots go to var/browser/ as test artifacts.
"""

import os
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[2] / "var" / "browser"
PASSWORD = "sales-pass-123"


@pytest.fixture(scope="session")
def chromium():
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium: run `apt-get install -y chromium` as root "
                    "(scripts/ensure-system-deps.sh does it) to run the browser tests.")
    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are plain
    # synchronous code, so Django's async-context guard would refuse them without this.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def sales_user(django_user_model):
    return django_user_model.objects.create_user("sales", password=PASSWORD, is_staff=True)


@pytest.fixture
def browse(chromium, live_server, request):
    """A fresh browser page on the live server: ``browse(width=1280)``; screenshots on teardown."""
    pages = []

    def open_page(width: int = 1280, height: int = 900):
        context = chromium.new_context(viewport={"width": width, "height": height}, base_url=live_server.url)
        context.set_default_timeout(10_000)
        page = context.new_page()
        pages.append((context, page))
        return page

    yield open_page
    SHOTS.mkdir(parents=True, exist_ok=True)
    for i, (context, page) in enumerate(pages):
        try:
            page.screenshot(path=str(SHOTS / f"{request.node.name}-{i}.png"), full_page=True)
        finally:
            context.close()


def log_in(page, next_path: str, username: str = "sales"):
    page.goto(f"/accounts/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"**{next_path}*")
