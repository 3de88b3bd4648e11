"""Re-encrypting every stored secret under the newest field-encryption key.

Secrets that must be read back (robot tokens, webhook secrets, SSH private keys, OAuth client
secrets, registration secrets, notification credentials) live in text columns named
``*_encrypted`` as Fernet tokens. Rotating the key is: put the new key first in
FIELD_ENCRYPTION_KEYS (the old one stays after it, so both decrypt), run
``manage.py rotate_encryption_keys`` on one machine, then remove the old key everywhere.
"""

from dataclasses import dataclass

from django.apps import apps
from django.db import models, transaction

from accounts import crypto

SUFFIX = "_encrypted"
BATCH = 500


@dataclass(frozen=True)
class RotationResult:
    """Per model and field: how many stored values were re-encrypted."""

    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def encrypted_fields() -> list[tuple[type[models.Model], str]]:
    """Every (model, field name) of the project that holds a Fernet token, by naming convention."""
    found = []
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if field.name.endswith(SUFFIX) and isinstance(field, models.TextField | models.CharField):
                found.append((model, field.name))
    return found


def encrypted_fields_rotate() -> RotationResult:
    """Re-encrypt every non-empty ``*_encrypted`` value under the first configured key.

    Each batch is its own transaction with the rows locked, so a concurrent writer (a robot token
    regenerated meanwhile) is never overwritten with an older value; a value already under the
    first key is re-encrypted too (Fernet has no cheap "which key" test), which is harmless.
    A value no configured key decrypts raises InvalidToken and stops the run before its batch is
    written: nothing is half-rotated within a batch, and the run can be repeated.
    """
    crypto.reset_keys()
    counts: dict[str, int] = {}
    for model, name in encrypted_fields():
        label = f"{model._meta.label}.{name}"
        counts[label] = 0
        last_pk = None
        while True:
            with transaction.atomic():
                rows = model._default_manager.exclude(**{name: ""}).order_by("pk")
                if last_pk is not None:
                    rows = rows.filter(pk__gt=last_pk)
                batch = list(rows.select_for_update().only("pk", name)[:BATCH])
                if not batch:
                    break
                for row in batch:
                    setattr(row, name, crypto.reencrypt(getattr(row, name)))
                model._default_manager.bulk_update(batch, [name])
                counts[label] += len(batch)
                last_pk = batch[-1].pk
    return RotationResult(counts=counts)
