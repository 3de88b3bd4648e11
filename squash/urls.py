from django.urls import re_path

from squash import ui, views

app_name = "squash"

urlpatterns = [
    # The repository name may have several path segments; the tag is the last one.
    re_path(r"^c1/squash/(?P<name>[^?#]+)/(?P<tag>[^/?#]+)$", views.SquashView.as_view(), name="download"),
    # The repository Settings tab's "Squash at push" switch (a web UI form).
    re_path(r"^repository/(?P<repository>[^?#]+)/-/squash$", ui.SquashSettingsView.as_view(), name="settings"),
]
