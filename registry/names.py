"""Grammar of repository names, tags, digests and scopes (OCI distribution-spec)."""

import re

from registry import errors

# Anchored with \Z, not $: "$" also matches before a trailing newline, so "latest\n" would pass.
PATH_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REPOSITORY_NAME_RE = re.compile(rf"^{PATH_COMPONENT}(?:/{PATH_COMPONENT})+\Z")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}\Z")
# Registered algorithms we can verify; the encoded part is lower-case hex of the right length.
DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})\Z")
# The general grammar, to tell "malformed" from "unsupported algorithm".
ANY_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+\Z")
MAX_NAME_LENGTH = 255


def split_repository_name(full_name: str) -> tuple[str, str]:
    """``ns/rest/of/name`` -> (``ns``, ``rest/of/name``), or NAME_INVALID."""
    if len(full_name) > MAX_NAME_LENGTH or not REPOSITORY_NAME_RE.match(full_name):
        raise errors.NameInvalid({"name": full_name})
    namespace, _, name = full_name.partition("/")
    return namespace, name


def is_digest(reference: str) -> bool:
    return ":" in reference


def validate_digest(digest: str) -> str:
    if not DIGEST_RE.match(digest or ""):
        raise errors.DigestInvalid({"digest": digest}, message="invalid or unsupported digest")
    return digest


def validate_tag(tag: str) -> str:
    if not TAG_RE.match(tag):
        raise errors.ManifestInvalid({"tag": tag}, message="invalid tag name")
    return tag
