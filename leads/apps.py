"""The leads app's configuration."""


from django.apps import AppConfig


class LeadsConfig(AppConfig):
    name = "leads"
    verbose_name = "Leads and the pipeline"
