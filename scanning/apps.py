from django.apps import AppConfig


class ScanningConfig(AppConfig):
    name = "scanning"
    verbose_name = "Security scanning"
    default_auto_field = "django.db.models.BigAutoField"
