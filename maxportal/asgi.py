"""ASGI entry point: uvicorn serves maxportal so that long-polling inbox requests hold no worker."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "maxportal.settings")

application = get_asgi_application()
