"""python manage.py issue_token <eidolon> [--agent claude] [--name ...]: print a new API token once."""

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from eidolons.models import Eidolon
from eidolons.selectors import agent_of_kind
from eidolons.services import api_token_issue
from maxportal.kernel.errors import NotFound


class Command(BaseCommand):
    help = "Issue an API token for an Eidolon (by name or slug). The token is printed once and never stored."

    def add_arguments(self, parser):
        parser.add_argument("eidolon", help="The Eidolon's name or slug, e.g. Mike or mike.")
        parser.add_argument("--agent", help="Bind the token to one of its agents: claude, gemini, codex or copilot.")
        parser.add_argument("--name", default="", help="What the token is for, e.g. 'cor-daemon on CT202'.")

    def handle(self, *args, eidolon, agent=None, name="", **options):
        target = Eidolon.objects.filter(Q(slug=eidolon.lower()) | Q(name__iexact=eidolon)).first()
        if target is None:
            known = ", ".join(Eidolon.objects.order_by("slug").values_list("slug", flat=True)) or "none (load the plan)"
            raise CommandError(f"No Eidolon {eidolon!r}. Known: {known}.")
        agent_obj = None
        if agent:
            try:
                agent_obj = agent_of_kind(target, agent)
            except NotFound as exc:
                raise CommandError(exc.message) from exc
        token, raw = api_token_issue(eidolon=target, agent=agent_obj, name=name)
        self.stderr.write(f"Token {token.prefix}… for {target.name}"
                          f"{' / ' + agent if agent else ''}: shown once, store it now.")
        self.stdout.write(raw)
