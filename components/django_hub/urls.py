"""``path("hub/", include("components.django_hub.urls"))`` gives ``POST /hub/token``."""

from django.urls import path

from components.django_hub import TOKEN_PATH, TOKEN_URL_NAME, URL_NAMESPACE, views

app_name = URL_NAMESPACE
urlpatterns = [path(TOKEN_PATH, views.token, name=TOKEN_URL_NAME)]
