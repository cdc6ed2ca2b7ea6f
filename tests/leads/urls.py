"""The project's URLs plus the leads pages (until maxportal/urls.py includes leads.urls)."""

from django.urls import include, path

from maxportal.urls import urlpatterns as project_urlpatterns

urlpatterns = [*project_urlpatterns, path("leads/", include("leads.urls"))]
