"""The sales pages' URLs (names ``leads:<page>``)."""

from django.urls import path

from . import views

app_name = "leads"

urlpatterns = [
    path("funnel/", views.funnel, name="funnel"),
    path("funnel/<slug:table>.csv", views.funnel_csv, name="funnel_csv"),
]
