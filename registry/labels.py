"""Labels of a manifest, as Quay reads them, and the ``quay.expires-after`` label.

An image's labels are the ``Labels`` of its config (what ``LABEL`` in a Dockerfile writes); an
OCI manifest's own annotations are labels too, and win over the config's. Artifacts and indexes
have no config labels. Pure functions: the caller reads the config bytes from storage.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import timedelta

from registry.manifests import DOCKER_MANIFEST, IMAGE_CONFIG_TYPES, INDEX_TYPES

log = logging.getLogger(__name__)

EXPIRES_AFTER = "quay.expires-after"
# A config is a few kilobytes; anything past this is not read for labels (nor shown).
CONFIG_READ_LIMIT = 1024 * 1024
# Far enough for any real use, near enough that adding it to a date never overflows.
EXPIRES_AFTER_MAXIMUM = timedelta(weeks=104)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_RE = re.compile(r"^(\d{1,12})([smhdw])$")


def duration_seconds(value: str) -> int:
    """``<count><unit>`` with unit s, m, h, d or w (``90m``, ``2w``), as Quay writes durations."""
    match = _DURATION_RE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"not a duration: {value!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def config_labels(config: dict | None) -> dict[str, str]:
    """The ``config.Labels`` of an image config (Docker and OCI write them in the same place)."""
    if not isinstance(config, dict):
        return {}
    inner = config.get("config")
    labels = inner.get("Labels") if isinstance(inner, dict) else None
    if not isinstance(labels, dict):
        return {}
    return {str(key): str(value) for key, value in labels.items() if isinstance(value, str | int | float | bool)}


def has_config_labels(media_type: str, config_media_type: str) -> bool:
    """Whether labels come from the config blob (an image manifest, not an artifact or index)."""
    return media_type not in INDEX_TYPES and config_media_type in IMAGE_CONFIG_TYPES


def manifest_labels(*, media_type: str, config: dict | None, annotations: dict | None) -> dict[str, str]:
    """All labels of a manifest: the config's, then (OCI only) the manifest's annotations over them."""
    if media_type in INDEX_TYPES:
        return {}
    labels = config_labels(config)
    if media_type != DOCKER_MANIFEST and isinstance(annotations, dict):
        labels.update({str(k): str(v) for k, v in annotations.items() if isinstance(v, str)})
    return labels


def expires_after(labels: dict[str, str]) -> timedelta | None:
    """The lifetime ``quay.expires-after`` gives a tag pushed with this manifest, if valid.

    A malformed, zero or negative value is ignored (the push still succeeds, as in Quay); one
    beyond the maximum is capped to it.
    """
    value = labels.get(EXPIRES_AFTER)
    if value is None:
        return None
    try:
        seconds = duration_seconds(value)
    except ValueError:
        log.debug("ignoring label %s=%r: not a duration", EXPIRES_AFTER, value)
        return None
    if seconds <= 0:
        log.debug("ignoring label %s=%r: not a positive duration", EXPIRES_AFTER, value)
        return None
    return timedelta(seconds=min(seconds, int(EXPIRES_AFTER_MAXIMUM.total_seconds())))


def parse_config(raw: bytes | None) -> dict | None:
    """The config blob as a JSON object, or None when it is not one."""
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def label_media_type(value: str) -> str:
    """Quay's media type of a label value: JSON objects and arrays are ``application/json``."""
    text = value.strip()
    if text[:1] in ("{", "["):
        try:
            json.loads(text)
            return "application/json"
        except ValueError:
            pass
    return "text/plain"


# Labels come from the stored manifest and config, not from rows of their own; the id is derived
# from the manifest and the key, so it is stable across requests as Quay's label uuids are.
_LABEL_NAMESPACE = uuid.UUID("3f6c2a4e-8f0b-5d7e-9c1a-6b2d4e8f0a13")


def label_id(manifest_digest: str, key: str) -> str:
    return str(uuid.uuid5(_LABEL_NAMESPACE, f"{manifest_digest}\n{key}"))
