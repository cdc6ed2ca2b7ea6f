"""python manage.py ensure_admin: the first operator account, with a generated password kept under var/."""

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the admin account if missing (password generated once, kept in var/admin-password.txt)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--url", default="http://127.0.0.1:8000/admin/", help="URL printed for the operator.")

    def handle(self, *args, username, url, **options):
        password_file = settings.VAR_DIR / "admin-password.txt"
        user_model = get_user_model()
        user = user_model.objects.filter(username=username).first()
        if user is None:
            password = secrets.token_urlsafe(18)
            user_model.objects.create_superuser(username=username, email="", password=password)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            # 0600: the file is the only place the generated password exists.
            fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(password + "\n")
            self.stdout.write(self.style.SUCCESS(f"Created the admin account '{username}'."))
        elif password_file.exists():
            password = password_file.read_text().strip()
        else:
            password = "(set by you earlier; not kept in var/)"  # noqa: S105 (a message, not a password)
        self.stdout.write(f"  URL:       {url}")
        self.stdout.write(f"  user name: {username}")
        self.stdout.write(f"  password:  {password}   (kept in {password_file})")
