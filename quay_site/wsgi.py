"""WSGI entry point: gunicorn serves the registry, REST API, UI and admin through it."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quay_site.settings")

application = get_wsgi_application()
