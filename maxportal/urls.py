from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views
from .api import api

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("provisioning/", include("provisioning.urls")),
    path("leads/", include("leads.urls")),
    path("sapwaves/", include("eidolons.sapwaves.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
]

admin.site.site_header = "maxportal administration"
admin.site.site_title = "maxportal"
admin.site.index_title = "The MAX plan"
