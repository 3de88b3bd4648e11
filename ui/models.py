from django.conf import settings
from django.db import models


class SiteConfiguration(models.Model):
    """Switches a superuser flips at run time from the superuser panel (one row, pk 1).

    ``user_creation_enabled`` is Quay's "users can create accounts" toggle; the environment's
    ``FEATURE_USER_CREATION`` can still turn sign-up off for the whole installation.
    """

    SINGLETON_PK = 1

    user_creation_enabled = models.BooleanField(
        default=True, help_text="Visitors may create their own account on the sign-up page."
    )
    updated = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        verbose_name = "site configuration"
        verbose_name_plural = "site configuration"

    def __str__(self) -> str:
        return "Site configuration"
