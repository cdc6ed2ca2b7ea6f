"""python manage.py load_max_plan: create the MAX plan's host, containers, Eidolons, agents, mailboxes."""

from django.core.management.base import BaseCommand

from provisioning.plan import max_plan_load


class Command(BaseCommand):
    help = "Create, idempotently, what the MAX provisioning plan names (a second run changes nothing)."

    def handle(self, *args, **options):
        report = max_plan_load()
        for line in report.created:
            self.stdout.write(f"created {line}")
        for line in report.differences:
            self.stdout.write(self.style.WARNING(f"differs: {line}"))
        if report.changed_nothing:
            self.stdout.write(
                self.style.SUCCESS(f"The MAX plan is already loaded: nothing changed ({report.unchanged} records).")
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Loaded the MAX plan: {len(report.created)} records created, {report.unchanged} already there."
                )
            )
