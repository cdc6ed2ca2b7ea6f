"""Server time and query counts of the sales pages on a seeded pipeline (prints figures; not a test).

    DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/mp_bench_pages \\
        .venv/bin/python bench/pages.py --leads 10000 --repeat 20

It migrates the database named by DATABASE_URL (use a throwaway one: it is filled with demo leads
once, ``leads.demo``), then times each page through Django's test client in this process (server
time without the network: URL routing, middleware, views, templates, queries) and counts queries.
Pages: the funnel over 90 days and over all time, the board with and without filters, a lead page.

Scale: the issue asks for 1,000,000 leads and 10,000,000 transitions. The funnel walks the ledger
rows of the range in Python, so its time grows with the moves in the range (its query count does
not); the figures in the README say at which size it stops meeting 200 ms.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "maxportal.settings")
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")  # the test client speaks plain HTTP

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from leads.demo import demo_leads_seed  # noqa: E402
from leads.models import Lead, StageTransition  # noqa: E402
from provisioning.plan import max_plan_load  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leads", type=int, default=10000)
    parser.add_argument("--days", type=int, default=730, help="history spread (two years)")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    settings.ALLOWED_HOSTS = ["testserver", *settings.ALLOWED_HOSTS]
    settings.STORAGES = {**settings.STORAGES,
                         "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    call_command("migrate", verbosity=0)
    max_plan_load()
    started = time.perf_counter()
    made = demo_leads_seed(count=args.leads, days=args.days)
    if made:
        print(f"seeded {made} leads in {time.perf_counter() - started:.1f} s")
    leads, moves = Lead.objects.count(), StageTransition.objects.count()
    print(f"database: {connection.vendor}, {leads} leads, {moves} transitions")
    user, _ = get_user_model().objects.get_or_create(username="bench-sales", defaults={"is_staff": True})
    client = Client()
    client.force_login(user)
    lead = Lead.objects.filter(status="escalated").first() or Lead.objects.first()
    pages = {
        "funnel, 90 days": "/leads/funnel/",
        "funnel, all time (1,000 days)": f"/leads/funnel/?start={date.today() - timedelta(days=1000)}",
        "board": "/leads/board/",
        "board, filtered (stale, search)": "/leads/board/?stale=on&q=demo",
        "board, owner + source": "/leads/board/?owner=mike&source=email",
        "lead page": f"/leads/{lead.pk}/",
    }
    print(f"{'page':34} {'p50 ms':>8} {'p99 ms':>8} {'queries':>8}")
    for name, url in pages.items():
        client.get(url)  # warm
        times = []
        for _ in range(args.repeat):
            with CaptureQueriesContext(connection) as queries:
                began = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        times.sort()
        p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
        print(f"{name:34} {statistics.median(times):8.1f} {p99:8.1f} {len(queries):8d}")


if __name__ == "__main__":
    main()
