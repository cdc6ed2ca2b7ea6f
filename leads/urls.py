"""The sales pages' URLs (names ``leads:<page>``)."""

from django.urls import path

from . import views

app_name = "leads"

urlpatterns = [
    path("funnel/", views.funnel, name="funnel"),
    path("funnel/<slug:table>.csv", views.funnel_csv, name="funnel_csv"),
    path("board/", views.board_page, name="board"),
    path("<uuid:lead_id>/", views.lead_page, name="lead"),
    path("<uuid:lead_id>/move/", views.lead_move, name="lead_move"),
    path("<uuid:lead_id>/note/", views.lead_note, name="lead_note"),
]
