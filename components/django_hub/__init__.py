"""
Log in once: a Django app that hands the user of the Django session the
same JWT the hub's ``POST /auth/token`` hands a ``hub_session`` cookie, so a
Django site's pages join the hub without a second login.

    INSTALLED_APPS = [..., "django.contrib.auth", "django.contrib.sessions", "components.django_hub"]
    urlpatterns = [..., path("hub/", include("components.django_hub.urls"))]   # POST /hub/token

Events from Django code, after the transaction commits (``commit_push``)::

    from components.django_hub import push
    push("app.shop.orders", order.id, to_users=[order.owner.username])

Importing this package needs no Django; its modules do. Nothing else in the
hub imports it, so Django stays optional for the hub.
"""

# the Django app label, URL namespace and the name of the token view's URL
APP_LABEL = "reactive_hub"
URL_NAMESPACE = "reactive_hub"
TOKEN_URL_NAME = "token"
# the path of the token view under the project's include()
TOKEN_PATH = "token"


def __getattr__(name):
    """``push`` (:func:`components.django_hub.commit_push.push`), imported on first use."""
    if name != "push":
        raise AttributeError(name)
    from components.django_hub.commit_push import push
    return push
