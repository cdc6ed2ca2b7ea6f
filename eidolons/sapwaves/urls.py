"""The SapWaves staff page's URLs: the board and its wave, Eidolon and bulk actions."""

from django.urls import path

from . import views

app_name = "sapwaves"

urlpatterns = [
    path("", views.board, name="board"),
    path("waves/<int:pk>/<str:action>/", views.wave_action, name="wave_action"),
    path("eidolons/<int:pk>/<str:action>/", views.eidolon_action, name="eidolon_action"),
    path("all/<str:action>/", views.bulk_action, name="bulk_action"),
]
