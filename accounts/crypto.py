"""Secret handling shared by every app: random tokens, hashing, and reversible encryption.

Fernet (AES-128-CBC + HMAC) from ``cryptography`` encrypts the secrets Quay shows again
(robot tokens); everything that is only ever compared is stored as a SHA-256 digest.
"""

import base64
import hashlib
import hmac
import secrets
from functools import lru_cache

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


def random_token(length: int = 64) -> str:
    """A URL-safe random token of exactly ``length`` characters from [A-Za-z0-9]."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_hash_matches(token: str, expected_hash: str) -> bool:
    return hmac.compare_digest(token_hash(token), expected_hash)


@lru_cache(maxsize=1)
def _fernet() -> Fernet:
    key = getattr(settings, "FIELD_ENCRYPTION_KEY", "")
    if not key:
        # Derive a dedicated key so the raw SECRET_KEY is never used as a cipher key.
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"field-encryption").derive(
            settings.SECRET_KEY.encode()
        )
        key = base64.urlsafe_b64encode(derived)
    return Fernet(key)


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt(value: str) -> str:
    return _fernet().decrypt(value.encode()).decode()
