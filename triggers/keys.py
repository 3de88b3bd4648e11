"""The SSH key pair a custom git trigger clones with (Ed25519, OpenSSH formats)."""

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def ssh_keypair_generate(comment: str) -> tuple[str, str]:
    """A new ``(public_key, private_key)``: the one-line OpenSSH public key (with ``comment``) and
    the unencrypted OpenSSH private key that ``ssh -i`` and git read."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.OpenSSH,
        encryption_algorithm=serialization.NoEncryption(),
    ).decode("ascii")
    public = (
        key.public_key()
        .public_bytes(encoding=serialization.Encoding.OpenSSH, format=serialization.PublicFormat.OpenSSH)
        .decode("ascii")
    )
    return f"{public} {comment}", private
