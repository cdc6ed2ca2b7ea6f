from django.urls import path

from . import views

app_name = "provisioning"

urlpatterns = [
    path("", views.grid, name="grid"),
    path("containers/<int:pk>/", views.container_detail, name="container_detail"),
    path("containers/<int:pk>/provision", views.container_provision, name="container_provision"),
    path("containers/<int:pk>/steps/<str:step>/", views.cell_detail, name="step_detail"),
    path(
        "containers/<int:pk>/steps/<str:step>/<str:action>",
        views.step_action,
        name="step_action",
    ),
    path("hosts/<int:pk>/provision", views.host_provision, name="host_provision"),
    path("hosts/<int:pk>/drift-check", views.host_drift_check, name="host_drift_check"),
]
