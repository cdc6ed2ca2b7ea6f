from django.apps import AppConfig


class KernelConfig(AppConfig):
    name = "maxportal.kernel"
    label = "kernel"
    verbose_name = "Portal kernel"
    default_auto_field = "django.db.models.BigAutoField"
