"""WSGI entry point (for a sync server; the recommended server is ASGI, see asgi.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "maxportal.settings")

application = get_wsgi_application()
