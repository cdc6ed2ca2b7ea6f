"""``manage.py seed_demo_leads``: demo leads with months of history for the sales pages (see leads/demo.py)."""

from django.core.management.base import BaseCommand

from leads.demo import demo_leads_seed


class Command(BaseCommand):
    help = "Create demo leads (marked as demo everywhere) with histories, only when there is no lead yet."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=160)
        parser.add_argument("--days", type=int, default=120)
        parser.add_argument("--seed", type=int, default=42)

    def handle(self, *args, count, days, seed, **options):
        made = demo_leads_seed(count=count, days=days, seed=seed)
        if made:
            self.stdout.write(f"Created {made} demo leads over the last {days} days (names start with 'Demo').")
        else:
            self.stdout.write("There are leads already: no demo leads created.")
