"""The leads pages' URLs (the sales funnel); the API's are in leads/api.py."""


from django.urls import path

from . import views

app_name = "leads"

urlpatterns = [
    path("funnel/", views.funnel, name="funnel"),
]
