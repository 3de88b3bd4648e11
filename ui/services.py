"""Writes that belong to the web UI itself: the superuser's run-time switches."""

from django.db import transaction

from accounts.models import User
from ui.models import SiteConfiguration


@transaction.atomic
def site_configuration_update(*, actor: User, user_creation_enabled: bool) -> SiteConfiguration:
    config, _ = SiteConfiguration.objects.select_for_update().get_or_create(pk=SiteConfiguration.SINGLETON_PK)
    config.user_creation_enabled = user_creation_enabled
    config.updated_by = actor
    config.save()
    return config
