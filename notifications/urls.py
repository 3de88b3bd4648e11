"""Pages of the notifications app outside the REST API."""

from django.urls import path

from notifications.views import AuthorizeEmailView

urlpatterns = [
    # Quay's path for the link in the confirmation e-mail.
    path("authrepoemail", AuthorizeEmailView.as_view(), name="notifications-authorize-email"),
]
