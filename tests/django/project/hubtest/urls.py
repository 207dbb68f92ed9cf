"""No pages: the tests drive the project through manage.py; with the hub's app, ``POST /hub/token``."""

from django.conf import settings
from django.urls import include, path

urlpatterns = []
if "components.django_hub" in settings.INSTALLED_APPS:
    urlpatterns.append(path("hub/", include("components.django_hub.urls")))
