"""The eidolons app's configuration."""


from django.apps import AppConfig


class EidolonsConfig(AppConfig):
    name = "eidolons"
    verbose_name = "Eidolons"
