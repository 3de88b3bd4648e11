"""``manage.py rotate_encryption_keys``: re-encrypt stored secrets under the newest key."""

from cryptography.fernet import InvalidToken
from django.core.management.base import BaseCommand, CommandError

from accounts.key_rotation import encrypted_fields_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (*_encrypted columns) under the first key of "
        "FIELD_ENCRYPTION_KEYS; afterwards the older keys can be removed."
    )

    def handle(self, *args, **options):
        try:
            result = encrypted_fields_rotate()
        except InvalidToken as exc:
            raise CommandError(
                "a stored secret is encrypted under a key that is not configured: keep every key still in use "
                "in FIELD_ENCRYPTION_KEYS (newest first) and run the command again"
            ) from exc
        for label, count in result.counts.items():
            self.stdout.write(f"{label}: {count}")
        self.stdout.write(self.style.SUCCESS(f"re-encrypted {result.total} value(s)"))
