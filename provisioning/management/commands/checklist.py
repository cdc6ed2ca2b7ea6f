"""Tick, untick or skip a step of a container's checklist, or show the checklist.

    python manage.py checklist 201                                   # show CT201's checklist
    python manage.py checklist 201 m365_account --tick --by christian [--note ...]
    python manage.py checklist 201 auth_complete --untick --by christian --reason "codex token expired"
    python manage.py checklist 201 m365_account --skip --by christian --reason "shared mailbox"

Every change goes through the same services as the page and the admin, and lands in the audit trail.
"""

from django.core.management.base import BaseCommand, CommandError

from maxportal.kernel.errors import DomainError
from provisioning.checklist import STEPS
from provisioning.grid import checklist_grid
from provisioning.models import ChecklistEvent
from provisioning.services import step_skip, step_tick, step_untick

from .provision import grid_text, resolve_actor, resolve_containers


class Command(BaseCommand):
    help = "Tick, untick or skip a checklist step (manual steps are ticked here), or show a checklist."

    def add_arguments(self, parser):
        parser.add_argument("vmid", type=int)
        parser.add_argument("step", nargs="?", help=f"One of: {', '.join(STEPS.order)}.")
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--tick", action="store_true", help="Mark a manual step done.")
        action.add_argument("--untick", action="store_true", help="Take a done step back to pending (needs --reason).")
        action.add_argument("--skip", action="store_true", help="Mark a step not needed (needs --reason).")
        parser.add_argument("--by", help="Your username: every change says who made it.")
        parser.add_argument("--reason", default="", help="Why (required to untick or skip).")
        parser.add_argument("--note", default="", help="A note kept with a tick.")
        parser.add_argument("--host", help="The host's name, when the vmid exists on several.")

    def handle(self, *args, vmid, step, tick, untick, skip, by, reason, note, host, **options):
        (container,) = resolve_containers([vmid], host=host, all_=False)
        if not step:
            self.stdout.write(grid_text(checklist_grid(vmids=[vmid], host=container.host)))
            for event in ChecklistEvent.objects.filter(container=container)[:10]:
                why = f": {event.reason}" if event.reason else ""
                self.stdout.write(f"  {event.at:%Y-%m-%d %H:%M:%S} {event.step}: {event.from_state} -> "
                                  f"{event.to_state} by {event.actor_label}{why}")
            return
        if step not in STEPS:
            raise CommandError(f"There is no step '{step}'. The steps are: {', '.join(STEPS.order)}.")
        if not (tick or untick or skip):
            raise CommandError("Say what to do: --tick, --untick or --skip.")
        if not by:
            raise CommandError("Say who you are with --by <username>: every change is recorded with a name.")
        actor = resolve_actor(by, "manage.py checklist")
        try:
            if tick:
                row = step_tick(container=container, step=step, actor=actor, note=note)
            elif untick:
                row = step_untick(container=container, step=step, actor=actor, reason=reason)
            else:
                row = step_skip(container=container, step=step, actor=actor, reason=reason)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(self.style.SUCCESS(f"CT{vmid} {STEPS[step].label}: {row.state} (by {actor.label})"))
