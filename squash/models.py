"""The squashed-image cache: one stored docker-archive per flattened image and loaded name, the
exact uncompressed sizes of layers, and each repository's squash options."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from registry.models import Manifest, Repository


class SquashedImage(models.Model):
    """A tag's image flattened into one layer, as the ``docker load`` tarball of
    ``GET /c1/squash/...``: being built, ready in storage, or failed.

    Keyed by the image manifest that was flattened (for a multi-architecture tag: the chosen
    platform's manifest) and by the name the archive loads as (``<host>/<ns>/<repo>:<tag>.squash``
    is inside the tarball, so another tag or host name is another tarball). The row goes with its
    manifest (garbage collection, deletes); the stored file is removed by the next garbage
    collection pass once no row names it. ``owner`` identifies the current flattening attempt:
    only the attempt that claimed the row may publish its result, and a ``heartbeat`` older than
    SQUASH_STALE_SECONDS means the flattening died (a killed process) and may be taken over.
    """

    class State(models.TextChoices):
        BUILDING = "building", "Building"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="squashed_images")
    manifest = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="squashed_images")
    tag = models.CharField(max_length=255, help_text="The tag the archive was asked for (its loaded name).")
    host = models.CharField(max_length=255, help_text="The registry host in the loaded name.")
    platform = models.CharField(max_length=64, blank=True, help_text="os/arch[/variant] of the flattened image.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.BUILDING)
    size = models.BigIntegerField(default=0, help_text="Exact size of the tarball (known before its first byte).")
    sha256 = models.CharField(max_length=64, blank=True)
    storage_name = models.CharField(max_length=255, blank=True)
    owner = models.CharField(max_length=32, blank=True, help_text="Token of the flattening attempt that holds the row.")
    heartbeat = models.DateTimeField(null=True, blank=True)
    flattenings = models.PositiveIntegerField(default=0, help_text="Flattenings started for this row.")
    error = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    finished = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["manifest", "host", "tag"], name="squash_unique_manifest_name"),
        ]
        indexes = [models.Index(fields=["repository", "tag"], name="squash_repo_tag_idx")]

    @property
    def loaded_name(self) -> str:
        return f"{self.host}/{self.repository.full_name}:{self.tag}.squash"

    def __str__(self) -> str:
        return f"{self.repository_id}:{self.tag}.squash ({self.state})"


class LayerSize(models.Model):
    """The exact uncompressed (tar) size of a stored layer blob, measured once by decompressing it.

    Keyed by digest, not by a foreign key: the bytes behind a digest never change, and garbage
    collection deletes Blob rows with plain SQL. A row whose blob is gone is harmless.
    """

    digest = models.CharField(max_length=255, unique=True)
    uncompressed_size = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.digest}: {self.uncompressed_size}"


class SquashSettings(models.Model):
    """A repository's squash options, set by its admins: ``squash_at_push`` squashes every image
    a tag is pointed at (linux/amd64 for multi-architecture tags) in the background, so that the
    first ``curl | docker load`` is served from the cache."""

    repository = models.OneToOneField(Repository, on_delete=models.CASCADE, related_name="squash_settings")
    squash_at_push = models.BooleanField(default=False)

    class Meta:
        verbose_name_plural = "squash settings"

    def __str__(self) -> str:
        return f"squash settings of {self.repository_id}"
