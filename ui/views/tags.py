"""The Tags and Tag History tabs of a repository, the Fetch Tag panel, and the tag changes.

Tags (``?tab=tags``): the alive tags, newest first, one page at a time (``&filter=`` part of a
name, ``&page=``), each with a gear menu. A menu item opens a panel above the table at a URL of
its own (``&tag=<name>&action=add|move|expiration|delete|fetch``), so every panel works without
JavaScript and can be linked to; the change it makes is a POST under ``/-/tags/...`` that comes
back to the same page of the listing.

Tag History (``?tab=history``, also Actions -> View Tags History): every lifetime of every tag,
or of one (``&tag=<name>``), newest first, with Restore on the entries the time machine keeps.

Views read through registry selectors and write through registry services only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone

from registry import errors as registry_errors
from registry import names
from registry import selectors as registry_selectors
from registry import services as registry_services
from registry.models import Repository, Role, Tag
from scanning import selectors as scanning_selectors
from scanning.services import scanning_enabled
from ui import forms
from ui.access import ROLE_NEEDED_MESSAGES, Forbidden, RepositoryAccess, client_ip, principal_of, repository_access
from ui.views.base import UiView
from ui.views.repository import RepositoryTab, register_tab, registry_host, render_repository, tab_by_slug

TAGS_PER_PAGE = 50
HISTORY_PER_PAGE = 50
# Far past any real listing, and small enough that the offset stays a database integer.
MAX_PAGE = 10**6
FILTER_MAX = 128
WRITE_ACTIONS = ("add", "move", "expiration", "delete")
TAG_ACTIONS = (*WRITE_ACTIONS, "fetch")


def short_digest(digest: str) -> str:
    """``sha256:`` and the first 12 hex digits, as Quay shows a manifest."""
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}:{value[:12]}" if value else digest


# --- Where the user is in a listing ------------------------------------------------------------


def _page_number(value) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 1
    return min(max(number, 1), MAX_PAGE)


@dataclass(frozen=True)
class Listing:
    """A tab's filter and page: carried by the links of its panels and by the hidden fields of
    its forms, so a change comes back to the same page."""

    tab: str
    filter_param: str
    filter: str = ""
    page: int = 1

    def url(self, repository: Repository) -> str:
        params = {"tab": self.tab}
        if self.filter:
            params[self.filter_param] = self.filter
        if self.page > 1:
            params["page"] = self.page
        base = reverse("ui:repository", kwargs={"repository": repository.full_name})
        return f"{base}?{urlencode(params)}"

    def with_page(self, page: int) -> Listing:
        return Listing(self.tab, self.filter_param, self.filter, page)


def listing_of(request, tab: str, filter_param: str) -> Listing:
    """From the query string of a page, or from the ``listing_*`` fields of a form."""
    if request.method == "POST":
        text, page = request.POST.get("listing_filter"), request.POST.get("listing_page")
    else:
        text, page = request.GET.get(filter_param), request.GET.get("page")
    return Listing(tab, filter_param, (text or "").strip()[:FILTER_MAX], _page_number(page))


def tags_listing(request) -> Listing:
    return listing_of(request, "tags", "filter")


def history_listing(request) -> Listing:
    return listing_of(request, "history", "tag")


# --- Fetch Tag ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchFormat:
    """A choice of the Fetch Tag panel's Image format: ``command(reference, tag, digest)``, where
    ``reference`` is ``<registry host>/<namespace>/<name>``."""

    slug: str
    label: str
    command: Callable[[str, str, str], str]
    kinds: tuple[str, ...] = (Repository.Kind.IMAGE,)
    # A format that needs a second choice (the squashed image's credentials) gives
    # ``options(request, repository, tag) -> [FetchChoice]``, each with its full command, under
    # ``options_label``; it is left out when there is no option. ``command`` is then unused.
    options: Callable[..., list[FetchChoice]] | None = None
    options_label: str = ""


FETCH_FORMATS: list[FetchFormat] = [
    FetchFormat("docker-tag", "Docker Pull (by tag)", lambda ref, tag, digest: f"docker pull {ref}:{tag}"),
    FetchFormat("docker-digest", "Docker Pull (by digest)", lambda ref, tag, digest: f"docker pull {ref}@{digest}"),
    FetchFormat("podman-tag", "Podman Pull (by tag)", lambda ref, tag, digest: f"podman pull {ref}:{tag}"),
    FetchFormat("podman-digest", "Podman Pull (by digest)", lambda ref, tag, digest: f"podman pull {ref}@{digest}"),
    FetchFormat("rkt", "rkt Fetch", lambda ref, tag, digest: f"rkt fetch {ref}:{tag}"),
    FetchFormat(
        "oras-tag",
        "ORAS Pull (by tag)",
        lambda ref, tag, digest: f"oras pull {ref}:{tag}",
        kinds=(Repository.Kind.APPLICATION,),
    ),
    FetchFormat(
        "oras-digest",
        "ORAS Pull (by digest)",
        lambda ref, tag, digest: f"oras pull {ref}@{digest}",
        kinds=(Repository.Kind.APPLICATION,),
    ),
    FetchFormat(
        "helm",
        "Helm Pull",
        lambda ref, tag, digest: f"helm pull oci://{ref} --version {tag}",
        kinds=(Repository.Kind.APPLICATION,),
    ),
]


def register_fetch_format(fetch_format: FetchFormat, *, after: str | None = None) -> None:
    """Add (or replace) an Image format, right after ``after`` (at the end without it): how a
    later feature (squashed images) joins the Fetch Tag panel."""
    existing = [index for index, other in enumerate(FETCH_FORMATS) if other.slug == fetch_format.slug]
    if existing:
        FETCH_FORMATS[existing[0]] = fetch_format
        return
    positions = [index for index, other in enumerate(FETCH_FORMATS) if other.slug == after]
    FETCH_FORMATS.insert(positions[0] + 1 if positions else len(FETCH_FORMATS), fetch_format)


@dataclass(frozen=True)
class FetchChoice:
    slug: str
    label: str
    command: str
    options: tuple[FetchChoice, ...] = ()
    options_label: str = ""


def fetch_choices(request, repository: Repository, tag: Tag) -> list[FetchChoice]:
    reference = f"{registry_host(request)}/{repository.full_name}"
    choices = []
    for choice in FETCH_FORMATS:
        if repository.kind not in choice.kinds:
            continue
        if choice.options is None:
            command = choice.command(reference, tag.name, tag.manifest.digest)
            choices.append(FetchChoice(choice.slug, choice.label, command))
            continue
        options = tuple(choice.options(request, repository, tag))
        if options:
            choices.append(FetchChoice(choice.slug, choice.label, options[0].command, options, choice.options_label))
    return choices


# --- The Tags tab ---------------------------------------------------------------------------------


@dataclass
class TagPanel:
    """The panel a gear menu item opens above the tags: ``tag`` is the alive row of ``name``
    (None when the tag is gone); ``confirm`` holds the move an Add New Tag is about to make."""

    action: str
    name: str
    tag: Tag | None
    form: forms.UiForm | None = None
    confirm: dict | None = None
    fetch: list[FetchChoice] = field(default_factory=list)
    fetch_selected: FetchChoice | None = None
    fetch_option: FetchChoice | None = None

    @property
    def title(self) -> str:
        return {
            "add": "Add New Tag",
            "move": "Move Tag",
            "expiration": "Change Expiration",
            "delete": "Delete Tag",
            "fetch": "Fetch Tag",
        }[self.action]


def _initial_form(action: str, tag: Tag) -> forms.UiForm | None:
    if action == "add":
        return forms.TagAddForm(initial={"manifest_digest": tag.manifest.digest, "source": tag.name})
    if action == "move":
        return forms.TagMoveForm(initial={"tag": tag.name})
    if action == "expiration":
        return forms.TagExpirationForm(initial={"tag": tag.name, "expiration": tag.expiration})
    if action == "delete":
        return forms.TagDeleteForm(initial={"tags": [tag.name]})
    return None


def _panel_from_query(request, access: RepositoryAccess) -> TagPanel | None:
    action, name = request.GET.get("action"), (request.GET.get("tag") or "").strip()
    if action not in TAG_ACTIONS or not name:
        return None
    if action in WRITE_ACTIONS and not access.can_write:
        raise Forbidden(ROLE_NEEDED_MESSAGES[Role.WRITE].format(name=access.repository.full_name))
    tag = registry_selectors.tag_alive(repository=access.repository, name=name[:255])
    panel = TagPanel(action=action, name=name, tag=tag)
    if tag is None:
        return panel
    panel.form = _initial_form(action, tag)
    if action == "fetch":
        panel.fetch = fetch_choices(request, access.repository, tag)
        wanted = request.GET.get("format")
        panel.fetch_selected = next((choice for choice in panel.fetch if choice.slug == wanted), panel.fetch[0])
        if panel.fetch_selected.options:
            option = request.GET.get("option")
            options = panel.fetch_selected.options
            panel.fetch_option = next((choice for choice in options if choice.slug == option), options[0])
    return panel


def tags_context(request, access: RepositoryAccess, **bound) -> dict:
    repository = access.repository
    listing = tags_listing(request)
    now = timezone.now()
    total = registry_selectors.alive_tag_count(repository=repository, name_contains=listing.filter, now=now)
    pages = max(1, math.ceil(total / TAGS_PER_PAGE))
    listing = listing.with_page(min(listing.page, pages))
    rows, _ = registry_selectors.tag_history_page(
        repository=repository,
        page=listing.page,
        limit=TAGS_PER_PAGE,
        only_active=True,
        name_filter=("like", listing.filter) if listing.filter else None,
        now=now,
    )
    first = (listing.page - 1) * TAGS_PER_PAGE + 1
    # The Security column: the cached counts of the page's manifests, one query for the page.
    security = scanning_enabled() and repository.kind == Repository.Kind.IMAGE
    if security and rows:
        summaries = scanning_selectors.tag_summaries(tags=rows)
        for row in rows:
            row.security = summaries[row.pk]
    return {
        "tag_rows": rows,
        "tags_security": security,
        "tags_total": total,
        "tags_first": first,
        "tags_last": first + len(rows) - 1,
        "tags_pages": pages,
        "tags_listing": listing,
        "tags_filter": listing.filter,
        "tags_url": listing.url(repository),
        "tags_previous_url": listing.with_page(listing.page - 1).url(repository) if listing.page > 1 else "",
        "tags_next_url": listing.with_page(listing.page + 1).url(repository) if listing.page < pages else "",
        "tag_panel": bound.get("panel") or _panel_from_query(request, access),
        "time_machine": forms.describe_seconds(repository.namespace.time_machine_seconds),
    }


# --- The Tag History tab --------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    """A lifetime of a tag: ``ended`` when it stopped pointing at its manifest (moved, deleted or
    expired), ``expires`` a future expiration of the alive entry. ``state``: ``current`` (alive),
    ``restorable``, ``current-image`` (ended, but the tag points at that image again) or
    ``outside`` (ended before the time machine window)."""

    row: Tag
    ended: datetime | None
    expires: datetime | None
    expired: bool
    state: str


def _ended_at(row: Tag, now: datetime) -> datetime | None:
    if row.lifetime_end is not None:
        return row.lifetime_end
    if row.expiration is not None and row.expiration <= now:
        return row.expiration
    return None


def history_context(request, access: RepositoryAccess, **bound) -> dict:
    repository = access.repository
    listing = history_listing(request)
    now = timezone.now()
    rows, more = registry_selectors.tag_history_page(
        repository=repository,
        page=listing.page,
        limit=HISTORY_PER_PAGE,
        specific_tag=listing.filter or None,
        now=now,
    )
    ended = {row.pk: _ended_at(row, now) for row in rows}
    ended_rows = [row for row in rows if ended[row.pk] is not None]
    kept = registry_selectors.tag_ids_in_time_machine(
        repository=repository, tag_ids=[row.pk for row in ended_rows], now=now
    )
    current = registry_selectors.alive_tag_manifest_ids(
        repository=repository, tag_names=[row.name for row in ended_rows], now=now
    )
    entries = []
    for row in rows:
        end = ended[row.pk]
        if end is None:
            state = "current"
        elif row.pk not in kept:
            state = "outside"
        elif current.get(row.name) == row.manifest_id:
            state = "current-image"
        else:
            state = "restorable"
        entries.append(
            HistoryEntry(
                row=row,
                ended=end,
                expires=row.expiration if end is None else None,
                expired=end is not None and row.lifetime_end is None,
                state=state,
            )
        )
    return {
        "history_entries": entries,
        "history_listing": listing,
        "history_tag": listing.filter,
        "history_previous_url": listing.with_page(listing.page - 1).url(repository) if listing.page > 1 else "",
        "history_next_url": listing.with_page(listing.page + 1).url(repository) if more else "",
        "time_machine": forms.describe_seconds(repository.namespace.time_machine_seconds),
    }


register_tab(RepositoryTab("tags", "Tags", "ui/repository/tab_tags.html", tags_context), after="info")
register_tab(RepositoryTab("history", "Tag History", "ui/repository/tab_history.html", history_context), after="tags")


# --- Changes --------------------------------------------------------------------------------------


class _TagChange(UiView):
    """A POST from the Tags or Tag History tab: success goes back to the same page of the tab
    with a message; an error re-renders it with the panel and what was typed (400); a caller
    below ``need`` gets a 403 with a message."""

    sign_in_required = True
    http_method_names = ["post"]
    need = Role.WRITE
    tab = "tags"

    def post(self, request, repository):
        access = repository_access(request, repository, need=self.need)
        if access.repository.state != Repository.State.NORMAL:
            raise Forbidden(f"{access.repository.full_name} is read-only: its tags cannot change.")
        return self.change(request, access)

    def change(self, request, access: RepositoryAccess):
        raise NotImplementedError

    def listing(self, request) -> Listing:
        return tags_listing(request) if self.tab == "tags" else history_listing(request)

    def done(self, request, access: RepositoryAccess, message: str):
        messages.success(request, message)
        return redirect(self.listing(request).url(access.repository))

    def failed(self, request, access: RepositoryAccess, *, status: int = 400, **bound):
        return render_repository(request, access, tab_by_slug(self.tab), status=status, **bound)

    def actor(self, request) -> tuple:
        return principal_of(request), client_ip(request)


class TagAddView(_TagChange):
    """Add New Tag. A name that is already a tag of another image is a move: the first POST
    answers with a confirmation, the second (``confirm_move``) moves it."""

    def change(self, request, access):
        form = forms.TagAddForm(request.POST)
        source = (request.POST.get("source") or "").strip()
        panel = TagPanel(action="add", name=source, tag=None, form=form)
        if not form.is_valid():
            return self.failed(request, access, panel=panel)
        name, digest = form.cleaned_data["name"], form.cleaned_data["manifest_digest"]
        current = registry_selectors.tag_alive(repository=access.repository, name=name)
        if current is not None and current.manifest.digest == digest:
            form.add_error("name", f"The tag {name} already points at this image.")
            return self.failed(request, access, panel=panel)
        if current is not None and not form.cleaned_data["confirm_move"]:
            panel.confirm = {"name": name, "from": current.manifest.digest, "to": digest}
            return self.failed(request, access, status=200, panel=panel)
        principal, ip = self.actor(request)
        try:
            registry_services.tag_create_or_move(
                repository=access.repository, name=name, manifest_digest=digest, principal=principal, ip=ip
            )
        except registry_errors.ManifestUnknown:
            form.add_error(None, f"The image {short_digest(digest)} is no longer in this repository.")
            return self.failed(request, access, panel=panel)
        except registry_services.RequestRefused as exc:
            form.add_error("name", str(exc))
            return self.failed(request, access, panel=panel)
        if current is not None:
            return self.done(
                request,
                access,
                f"Moved tag {name} from {short_digest(current.manifest.digest)} to {short_digest(digest)}.",
            )
        return self.done(request, access, f"Added tag {name} to {short_digest(digest)}.")


class TagMoveView(_TagChange):
    """Move Tag: point the tag at the image another tag (or a digest) names."""

    def change(self, request, access):
        form = forms.TagMoveForm(request.POST)
        panel = TagPanel(action="move", name=(request.POST.get("tag") or "").strip(), tag=None, form=form)
        if not form.is_valid():
            return self.failed(request, access, panel=panel)
        name, target = form.cleaned_data["tag"], form.cleaned_data["target"]
        repository = access.repository
        digest = None
        if names.is_digest(target):
            manifest = registry_selectors.manifest_in_repository(repository=repository, digest=target)
            digest = manifest.digest if manifest is not None else None
        elif names.TAG_RE.match(target):
            other = registry_selectors.tag_alive(repository=repository, name=target)
            digest = other.manifest.digest if other is not None else None
        if digest is None:
            form.add_error("target", f"No tag or manifest “{target}” in {repository.full_name}.")
            return self.failed(request, access, panel=panel)
        current = registry_selectors.tag_alive(repository=repository, name=name)
        if current is not None and current.manifest.digest == digest:
            form.add_error("target", f"The tag {name} already points at {short_digest(digest)}.")
            return self.failed(request, access, panel=panel)
        principal, ip = self.actor(request)
        try:
            registry_services.tag_create_or_move(
                repository=repository, name=name, manifest_digest=digest, principal=principal, ip=ip
            )
        except registry_errors.ManifestUnknown:
            form.add_error("target", f"The image {short_digest(digest)} is no longer in this repository.")
            return self.failed(request, access, panel=panel)
        except registry_services.RequestRefused as exc:
            form.add_error(None, str(exc))
            return self.failed(request, access, panel=panel)
        if current is None:  # deleted meanwhile: pointing it somewhere creates it again
            return self.done(request, access, f"Added tag {name} to {short_digest(digest)}.")
        return self.done(request, access, f"Moved tag {name} to {short_digest(digest)}.")


class TagExpirationView(_TagChange):
    """Change Expiration: a date in the future, at most TAG_EXPIRATION_MAXIMUM after the tag was
    pushed; an empty date clears it."""

    def change(self, request, access):
        form = forms.TagExpirationForm(request.POST)
        panel = TagPanel(action="expiration", name=(request.POST.get("tag") or "").strip(), tag=None, form=form)
        if not form.is_valid():
            return self.failed(request, access, panel=panel)
        name, expiration = form.cleaned_data["tag"], form.cleaned_data["expiration"]
        tag = registry_selectors.tag_alive(repository=access.repository, name=name)
        if tag is None:
            form.add_error(None, f"There is no tag {name} in {access.repository.full_name} any more.")
            return self.failed(request, access, panel=panel)
        panel.tag = tag
        latest = tag.lifetime_start + registry_services.TAG_EXPIRATION_MAXIMUM
        if expiration is not None and expiration > latest:
            # The service would quietly shorten it (as Quay's API does); here the person chose a
            # date, so say what is allowed instead.
            weeks = registry_services.TAG_EXPIRATION_MAXIMUM.days // 7
            form.add_error(
                "expiration",
                f"An expiration can be at most {weeks} weeks after the tag was pushed: "
                f"choose a date before {timezone.localtime(latest):%Y-%m-%d %H:%M}.",
            )
            return self.failed(request, access, panel=panel)
        principal, ip = self.actor(request)
        try:
            changed = registry_services.tag_set_expiration(
                repository=access.repository, name=name, expiration=expiration, principal=principal, ip=ip
            )
        except registry_errors.ManifestUnknown:
            form.add_error(None, f"There is no tag {name} in {access.repository.full_name} any more.")
            return self.failed(request, access, panel=panel)
        except registry_services.RequestRefused as exc:
            form.add_error("expiration", str(exc))
            return self.failed(request, access, panel=panel)
        if changed.expiration is None:
            return self.done(request, access, f"Tag {name} no longer expires.")
        message = f"Tag {name} expires at {timezone.localtime(changed.expiration):%Y-%m-%d %H:%M %Z}."
        if changed.expiration != expiration:
            message += " (A tag lives at least one hour after it was pushed.)"
        return self.done(request, access, message)


class TagDeleteView(_TagChange):
    """Delete Tag, and the multi-select delete: the tags end now and stay restorable from Tag
    History for the namespace's time machine window."""

    def change(self, request, access):
        form = forms.TagDeleteForm(request.POST)
        if not form.is_valid():
            messages.error(request, " ".join(form.errors.get("tags", ["Choose the tags to delete."])))
            return self.failed(request, access)
        tag_names = form.cleaned_data["tags"]
        principal, ip = self.actor(request)
        name = ""
        try:
            # All or nothing: a tag someone else removed meanwhile leaves the others in place,
            # so the page the person looks at still tells the truth.
            with transaction.atomic():
                for name in tag_names:
                    registry_services.tag_delete(repository=access.repository, name=name, principal=principal, ip=ip)
        except registry_errors.ManifestUnknown:
            messages.error(
                request, f"There is no tag {name} in {access.repository.full_name} any more: nothing was deleted."
            )
            return self.failed(request, access)
        namespace = access.repository.namespace
        if namespace.time_machine_seconds:
            after = (
                f" Restore {'it' if len(tag_names) == 1 else 'them'} from Tag History within "
                f"{forms.describe_seconds(namespace.time_machine_seconds)}."
            )
        else:
            after = f" The time machine of {namespace.name} is off: this cannot be undone."
        if len(tag_names) == 1:
            return self.done(request, access, f"Deleted tag {tag_names[0]}.{after}")
        return self.done(request, access, f"Deleted {len(tag_names)} tags: {', '.join(tag_names)}.{after}")


class TagRestoreView(_TagChange):
    """Restore, from Tag History: point the tag back at the image of an entry in the time machine."""

    tab = "history"

    def change(self, request, access):
        form = forms.TagHistoryEntryForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose a history entry to restore.")
            return self.failed(request, access)
        name, digest = form.cleaned_data["tag"], form.cleaned_data["manifest_digest"]
        principal, ip = self.actor(request)
        try:
            registry_services.tag_restore(
                repository=access.repository, name=name, manifest_digest=digest, principal=principal, ip=ip
            )
        except registry_errors.ManifestUnknown:
            messages.error(
                request, f"The image {short_digest(digest)} is no longer stored: tag {name} cannot go back to it."
            )
            return self.failed(request, access)
        except registry_services.RequestRefused as exc:
            messages.error(request, f"{exc}.")
            return self.failed(request, access)
        return self.done(request, access, f"Restored tag {name} to {short_digest(digest)}.")


class TagPurgeView(_TagChange):
    """Delete permanently, from Tag History (admins): the tag's ended entries on that image leave
    the time machine and can no longer be restored; garbage collection may reclaim them."""

    tab = "history"
    need = Role.ADMIN

    def change(self, request, access):
        form = forms.TagHistoryEntryForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose a history entry to delete.")
            return self.failed(request, access)
        name, digest = form.cleaned_data["tag"], form.cleaned_data["manifest_digest"]
        principal, ip = self.actor(request)
        try:
            count = registry_services.tag_purge(
                repository=access.repository, name=name, manifest_digest=digest, principal=principal, ip=ip
            )
        except registry_errors.ManifestUnknown:
            messages.error(request, f"Tag {name} has no ended entry on {short_digest(digest)} to delete.")
            return self.failed(request, access)
        entries = "entry" if count == 1 else "entries"
        return self.done(
            request,
            access,
            f"Permanently deleted {count} history {entries} of tag {name} on {short_digest(digest)}.",
        )
