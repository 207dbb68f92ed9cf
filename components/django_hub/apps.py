"""The app's configuration: on start it connects the logout receiver and registers the settings check."""

from django.apps import AppConfig

from components.django_hub import APP_LABEL


class HubConfig(AppConfig):
    """``components.django_hub`` in ``INSTALLED_APPS``."""

    name = "components.django_hub"
    label = APP_LABEL
    verbose_name = "Reactive hub (log in once)"
    default = True

    def ready(self):
        from components.django_hub import checks, signals
        checks.register()
        signals.connect()
