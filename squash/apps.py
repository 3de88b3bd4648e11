from django.apps import AppConfig


class SquashConfig(AppConfig):
    name = "squash"
    label = "squash"
    verbose_name = "Squashed images"

    def ready(self) -> None:
        # The Fetch Tag panel's "Squashed Docker Image" choice (the web UI's extension point).
        from squash import ui

        ui.register()
