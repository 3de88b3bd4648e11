"""Inputs and Quay's response shapes for the tag and manifest endpoints.

Inputs are DRF serializers; outputs are dicts built by the ``*_view`` functions below, with a
documentation-only serializer beside each so the OpenAPI schema shows Quay's field names.
"""

from __future__ import annotations

from rest_framework import serializers

from registry import labels as label_rules
from registry.models import Tag
from registry.rest.serializers import rfc2822
from registry.selectors import ManifestDetails, ManifestLayer, ManifestPlatform

# ---------------------------------------------------------------------------------------------
# Inputs


class ChangeTagInput(serializers.Serializer):
    manifest_digest = serializers.CharField(
        required=False, allow_null=True, max_length=200, help_text="(If given) the manifest the tag should point to"
    )
    expiration = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="(If given) when the tag expires, in seconds since the epoch; null: never",
    )


class RestoreTagInput(serializers.Serializer):
    manifest_digest = serializers.CharField(
        required=False, max_length=200, help_text="The manifest, from the tag's history, to point the tag back to"
    )


class ExpireTagInput(serializers.Serializer):
    manifest_digest = serializers.CharField(
        required=False,
        max_length=200,
        help_text="Required unless is_alive is true: the manifest whose ended entries of the tag are purged",
    )
    include_submanifests = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Accepted for Quay's clients; an index's children are collected with it here anyway",
    )
    is_alive = serializers.BooleanField(
        required=False,
        default=False,
        help_text="True: end the alive tag now, outside the time machine. False: purge its ended entries",
    )


# ---------------------------------------------------------------------------------------------
# Outputs


def _timestamp(moment) -> int:
    return int(moment.timestamp())


def tag_view(tag: Tag) -> dict:
    """A tag history entry as Quay's tag API shows it.

    ``end_ts``/``expiration`` are when the row ended, or will end by its expiration.
    """
    end = tag.lifetime_end or tag.expiration
    view = {
        "name": tag.name,
        "reversion": tag.reversion,
        "start_ts": _timestamp(tag.lifetime_start),
        "manifest_digest": tag.manifest.digest,
        "is_manifest_list": tag.manifest.is_index,
        "size": tag.manifest.layers_size,
        "last_modified": rfc2822(tag.lifetime_start),
    }
    if end is not None:
        view["end_ts"] = _timestamp(end)
        view["expiration"] = rfc2822(end)
    return view


def layer_view(layer: ManifestLayer) -> dict:
    return {
        "index": layer.index,
        "compressed_size": layer.compressed_size,
        "is_remote": layer.is_remote,
        "urls": layer.urls,
        "command": layer.command,
        "comment": layer.comment,
        "author": layer.author,
        "blob_digest": layer.blob_digest,
        "created_datetime": rfc2822(layer.created),
    }


def platform_view(platform: ManifestPlatform) -> dict:
    return {
        "digest": platform.digest,
        "media_type": platform.media_type,
        "manifest_size": platform.size,
        "os": platform.os,
        "architecture": platform.architecture,
        "variant": platform.variant,
        "os_version": platform.os_version,
        "layers_compressed_size": platform.layers_size,
    }


# What of an image config the manifest view shows (the history is in the layers already).
CONFIG_FIELDS = {
    "Env": "env",
    "Entrypoint": "entrypoint",
    "Cmd": "cmd",
    "WorkingDir": "working_dir",
    "User": "user",
    "StopSignal": "stop_signal",
}


def config_view(config: dict | None) -> dict | None:
    if config is None:
        return None
    inner = config.get("config") if isinstance(config.get("config"), dict) else {}
    view = {key: config.get(key) for key in ("architecture", "os", "variant", "created", "author")}
    view.update({ours: inner.get(theirs) for theirs, ours in CONFIG_FIELDS.items()})
    view["exposed_ports"] = sorted(inner["ExposedPorts"]) if isinstance(inner.get("ExposedPorts"), dict) else []
    view["volumes"] = sorted(inner["Volumes"]) if isinstance(inner.get("Volumes"), dict) else []
    view["labels"] = label_rules.config_labels(config)
    return view


def manifest_view(details: ManifestDetails) -> dict:
    manifest = details.manifest
    return {
        "digest": manifest.digest,
        "media_type": manifest.media_type,
        "is_manifest_list": manifest.is_index,
        "manifest_data": bytes(manifest.raw).decode("utf-8", errors="replace"),
        "config_media_type": manifest.config_media_type or None,
        # Quay reports no compressed size for an index; ``size`` has the children's total.
        "layers_compressed_size": 0 if manifest.is_index else manifest.layers_size,
        "size": manifest.layers_size,
        "created": rfc2822(manifest.created),
        "layers": [layer_view(layer) for layer in details.layers] if details.layers else None,
        "platforms": [platform_view(p) for p in details.platforms] if details.platforms is not None else None,
        "config": config_view(details.config),
    }


def label_view(digest: str, key: str, value: str) -> dict:
    return {
        "id": label_rules.label_id(digest, key),
        "key": key,
        "value": value,
        "source_type": "manifest",
        "media_type": label_rules.label_media_type(value),
    }


# Documentation-only shapes.


class TagHistoryEntryDoc(serializers.Serializer):
    name = serializers.CharField()
    reversion = serializers.BooleanField(help_text="Whether this entry was made by restoring the tag")
    start_ts = serializers.IntegerField(help_text="When the entry started, in seconds since the epoch")
    end_ts = serializers.IntegerField(required=False, help_text="When it ended or will expire")
    manifest_digest = serializers.CharField()
    is_manifest_list = serializers.BooleanField()
    size = serializers.IntegerField(help_text="Compressed size of the layers, in bytes")
    last_modified = serializers.CharField()
    expiration = serializers.CharField(required=False)


class TagListDoc(serializers.Serializer):
    tags = TagHistoryEntryDoc(many=True)
    page = serializers.IntegerField()
    has_additional = serializers.BooleanField()


class LayerDoc(serializers.Serializer):
    index = serializers.IntegerField()
    compressed_size = serializers.IntegerField()
    is_remote = serializers.BooleanField()
    urls = serializers.ListField(child=serializers.CharField(), allow_null=True)
    command = serializers.ListField(child=serializers.CharField(), allow_null=True)
    comment = serializers.CharField(allow_null=True)
    author = serializers.CharField(allow_null=True)
    blob_digest = serializers.CharField()
    created_datetime = serializers.CharField(allow_null=True)


class PlatformDoc(serializers.Serializer):
    digest = serializers.CharField()
    media_type = serializers.CharField()
    manifest_size = serializers.IntegerField()
    os = serializers.CharField(allow_null=True)
    architecture = serializers.CharField(allow_null=True)
    variant = serializers.CharField(allow_null=True)
    os_version = serializers.CharField(allow_null=True)
    layers_compressed_size = serializers.IntegerField(
        allow_null=True, help_text="Null when the child manifest is not stored in this repository"
    )


class ManifestDoc(serializers.Serializer):
    digest = serializers.CharField()
    media_type = serializers.CharField()
    is_manifest_list = serializers.BooleanField()
    manifest_data = serializers.CharField(help_text="The manifest as stored")
    config_media_type = serializers.CharField(allow_null=True)
    layers_compressed_size = serializers.IntegerField()
    size = serializers.IntegerField(help_text="Compressed size of the layers (of every child, for an index)")
    created = serializers.CharField()
    layers = LayerDoc(many=True, allow_null=True, help_text="Image manifests only")
    platforms = PlatformDoc(many=True, allow_null=True, help_text="Indexes only")
    config = serializers.DictField(allow_null=True, help_text="Main fields of the image config (images only)")


class LabelDoc(serializers.Serializer):
    id = serializers.CharField()
    key = serializers.CharField()
    value = serializers.CharField()
    source_type = serializers.CharField()
    media_type = serializers.CharField()


class LabelListDoc(serializers.Serializer):
    labels = LabelDoc(many=True)
