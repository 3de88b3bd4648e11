"""The Celery application: tasks take ids, call services, and keep state in the database."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quay_site.settings")

app = Celery("quay_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
