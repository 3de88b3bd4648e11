"""Secret handling shared by every app: random tokens, hashing, and reversible encryption.

Fernet (AES-128-CBC + HMAC) from ``cryptography`` encrypts the secrets that must be read back
(robot tokens, webhook secrets, SSH private keys, OAuth client secrets); MultiFernet lets the key
rotate. Everything that is only ever compared is stored as a SHA-256 digest (random tokens of 64
characters need no key stretching) and compared in constant time.
"""

import base64
import hashlib
import hmac
import secrets
from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
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


def _derived_key() -> bytes:
    # Derive a dedicated key so the raw SECRET_KEY is never used as a cipher key.
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"field-encryption").derive(
        settings.SECRET_KEY.encode()
    )
    return base64.urlsafe_b64encode(derived)


def configured_keys() -> list[bytes]:
    """The Fernet keys in order of preference: the first encrypts, every one decrypts.

    FIELD_ENCRYPTION_KEYS lists them newest first (rotation: put a new key in front, run
    ``manage.py rotate_encryption_keys``, then drop the old one); FIELD_ENCRYPTION_KEY is the
    one-key form. With neither set, the key derived from SECRET_KEY is used. The derived key also
    stays last for decryption while explicit keys are set, so that an installation that starts
    from the default can move to its own keys with one rotation.
    """
    keys = [k.strip().encode() for k in getattr(settings, "FIELD_ENCRYPTION_KEYS", []) if k.strip()]
    single = getattr(settings, "FIELD_ENCRYPTION_KEY", "")
    if single and single.encode() not in keys:
        keys.append(single.encode())
    derived = _derived_key()
    if derived not in keys:
        keys.append(derived)
    return keys


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in configured_keys()])


def reset_keys() -> None:
    """Forget the cached keys (after the settings changed: tests, the rotation command)."""
    _fernet.cache_clear()


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt(value: str) -> str:
    return _fernet().decrypt(value.encode()).decode()


def reencrypt(value: str) -> str:
    """``value`` encrypted under the current first key (whatever key it was encrypted with)."""
    return _fernet().rotate(value.encode()).decode()
