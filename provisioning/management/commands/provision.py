"""Queue the automated steps that are ready, and optionally wait for them.

    python manage.py provision 201 202 ...  |  --all  [--host ax42] [--wait [--timeout 1800]] [--by USER]

Each queued step queues the next ones when it is done ("provision all"), so one call takes a
container as far as its manual steps allow. With ``--wait`` the command follows the workers, prints
the checklist grid at the end, and exits non-zero if a step failed or is blocked (or on timeout).
"""

import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from maxportal.kernel.actors import Actor
from provisioning.checklist import STEPS
from provisioning.grid import checklist_grid, provisioning_in_progress
from provisioning.models import Container
from provisioning.services import checklist_ensure, container_provision
from provisioning.templatetags.provisioning_tags import state_symbol


def grid_text(grid) -> str:
    """The plan's checklist as text: ten rows, one column per container."""
    if not grid.containers:
        return "(no managed container)"
    width = max(len(row.label) for row in grid.rows)
    head = "Phase".ljust(width) + " | " + " | ".join(f"CT{c.vmid}".center(7) for c in grid.containers)
    lines = [head, "-" * len(head)]
    for row in grid.rows:
        cells = [(f"{state_symbol(c.state)} {c.state[:4]}" if c else "-").ljust(7) for c in row.cells]
        lines.append(row.label.ljust(width) + " | " + " | ".join(cells))
    return "\n".join(lines)


def resolve_actor(username: str | None, via: str) -> Actor:
    if not username:
        return Actor.for_system(via)
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise CommandError(
            f"There is no active user '{username}'. Use an existing username with --by "
            "(python manage.py createsuperuser makes one)."
        )
    return Actor.for_user(user, via)


def resolve_containers(vmids: list[int], *, host: str | None, all_: bool) -> list[Container]:
    containers = Container.objects.filter(managed=True).select_related("host").order_by("host__name", "vmid")
    if host:
        containers = containers.filter(host__name=host)
    if all_:
        found = list(containers)
        if not found:
            raise CommandError("No managed container: load the plan first (python manage.py load_max_plan).")
        return found
    if not vmids:
        raise CommandError("Name the containers (e.g. 201 202) or use --all.")
    found = []
    for vmid in vmids:
        matches = [c for c in containers if c.vmid == vmid]
        if not matches:
            unmanaged = Container.objects.filter(vmid=vmid, managed=False).exists()
            raise CommandError(
                f"CT{vmid} is not managed by the portal (pre-existing): it has no checklist."
                if unmanaged else f"There is no container {vmid}{' on ' + host if host else ''}."
            )
        if len(matches) > 1:
            raise CommandError(f"vmid {vmid} exists on several hosts: say which with --host.")
        found.append(matches[0])
    return found


class Command(BaseCommand):
    help = "Queue the ready automated checklist steps of containers; --wait follows them to the end."

    # The pause between two looks at the database while waiting (tests replace it).
    sleep = staticmethod(time.sleep)

    def add_arguments(self, parser):
        parser.add_argument("vmids", nargs="*", type=int, help="Container ids, e.g. 201 202.")
        parser.add_argument("--all", action="store_true", help="Every managed container.")
        parser.add_argument("--host", help="Only containers of this host (its name, e.g. ax42).")
        parser.add_argument("--wait", action="store_true", help="Wait until nothing runs; print the grid.")
        parser.add_argument("--timeout", type=float, default=3600.0, help="Seconds --wait waits at most.")
        parser.add_argument("--interval", type=float, default=1.0, help="Seconds between two looks while waiting.")
        parser.add_argument("--by", help="Username the queued steps are recorded as started by.")

    def handle(self, *args, **options):
        containers = resolve_containers(options["vmids"], host=options["host"], all_=options["all"])
        actor = resolve_actor(options["by"], "manage.py provision")
        for container in containers:
            checklist_ensure(container=container)
            runs = container_provision(container=container, actor=actor)
            queued = ", ".join(STEPS[r.step.step].label for r in runs) or "nothing ready"
            self.stdout.write(f"CT{container.vmid} {container.hostname}: queued {queued}")
        if not options["wait"]:
            return
        deadline = time.monotonic() + options["timeout"]
        last = None
        while provisioning_in_progress(containers=containers):
            if time.monotonic() > deadline:
                self.stdout.write(grid_text(checklist_grid(vmids=[c.vmid for c in containers])))
                raise CommandError(f"Steps still running after {options['timeout']:g} s; see the grid above.")
            grid = checklist_grid(vmids=[c.vmid for c in containers])
            summary = self._summary(grid)
            if summary != last:
                self.stdout.write(summary)
                last = summary
            self.sleep(options["interval"])
        grid = checklist_grid(vmids=[c.vmid for c in containers])
        self.stdout.write(grid_text(grid))
        problems = [
            f"CT{cell.step.container.vmid} {row.label}: {cell.state}"
            + (f" ({cell.step.note})" if cell.step.note else "")
            for row in grid.rows for cell in row.cells
            if cell and cell.state in ("failed", "blocked")
        ]
        if problems:
            raise CommandError("Some steps did not succeed:\n  " + "\n  ".join(problems))
        waiting = [
            f"CT{cell.step.container.vmid} {row.label}"
            for row in grid.rows for cell in row.cells if cell and cell.state == "pending"
        ]
        if waiting:
            self.stdout.write(
                "Waiting for a person (tick the manual steps) or for prerequisites: " + ", ".join(waiting)
            )
        else:
            self.stdout.write(self.style.SUCCESS("All steps done."))

    @staticmethod
    def _summary(grid) -> str:
        counts: dict[str, int] = {}
        for row in grid.rows:
            for cell in row.cells:
                if cell:
                    counts[cell.state] = counts.get(cell.state, 0) + 1
        return "  " + ", ".join(f"{state} {n}" for state, n in sorted(counts.items()))
