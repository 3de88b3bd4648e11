"""Dockerfile builds in the web UI: the Builds tab, the New Dockerfile Build form and a build's page.

- Builds tab (``?tab=builds``): the repository's recent builds, newest first, one page at a
  time. Shown only while builds are enabled (``build_settings().enabled``): a switched-off
  feature leaves no tab, no ``+`` menu entry and answers its pages with a clear message.
- New Dockerfile Build (``/repository/<r>/-/builds/new``, writers): a Dockerfile, a
  ``.tar.gz``/``.tar``/``.zip`` upload or an HTTP(S) URL, the tags to apply and an optional
  pull robot. The upload goes through the same services as Quay's ``filedrop`` API
  (``package_create`` + ``package_upload``) and ``build_create`` queues the build.
- Build page (``/repository/<r>/build/<uuid>``, Quay's address, the one build notifications link
  to): phase, source, tags, times, result and the log. ``static/ui/build.js`` follows the build
  live over the websocket ``/ws/build/<uuid>/`` (served by Daphne on ``WS_PORT``) and falls back
  to polling the REST logs endpoint each second; without script the page shows the log as it was.

Views only read through ``builds.selectors`` and write through ``builds.services``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

from django import forms as django_forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache

from accounts import selectors as account_selectors
from builds import selectors as build_selectors
from builds import services as build_services
from builds.errors import BuildError, BuildForbidden, BuildNotFound, BuildQueueFull, BuildsDisabled, PackageError
from builds.models import FINAL_PHASES, Build, BuildLogEntry, Phase
from registry.models import Role
from ui import forms
from ui.access import RepositoryAccess, client_ip, principal_of, repository_access
from ui.views.base import UiView, error_page
from ui.views.repository import RepositoryTab, register_tab, repository_url

BUILDS_PER_PAGE = 25
MAX_PAGE = 10**4
# The log a page renders by itself; the script fetches the rest from there (a long log must not
# make the page itself huge).
PAGE_LOG_ENTRIES = 2000
TAGS_MAX = build_services.MAX_TAGS
# Phases a writer may cancel in (docs/BUILDS.md, "Cancel"): the service's rule, shown as a button.
CANCELLABLE = tuple(phase for phase in Phase if phase in build_services.CANCELLABLE_PHASES)
DISABLED_MESSAGE = (
    "Dockerfile builds are not enabled on this registry. A superuser can enable them in the superuser panel."
)


def builds_enabled() -> bool:
    return build_selectors.builds_enabled()


# --- How a build is shown --------------------------------------------------------------------------


def phase_state(phase: str) -> str:
    """The visual state of a phase: ``waiting``, ``running``, ``complete``, ``failed`` or ``cancelled``."""
    if phase == Phase.WAITING:
        return "waiting"
    if phase == Phase.COMPLETE:
        return "complete"
    if phase in (Phase.ERROR, Phase.INTERNAL_ERROR, Phase.EXPIRED):
        return "failed"
    if phase == Phase.CANCELLED:
        return "cancelled"
    return "running"


PHASE_LABELS = {
    Phase.WAITING: "Waiting",
    Phase.BUILD_SCHEDULED: "Starting",
    Phase.UNPACKING: "Unpacking",
    Phase.PULLING: "Pulling base image",
    Phase.BUILDING: "Building",
    Phase.PUSHING: "Pushing",
    Phase.COMPLETE: "Complete",
    Phase.ERROR: "Failed",
    Phase.INTERNAL_ERROR: "Internal error",
    Phase.CANCELLED: "Cancelled",
    Phase.EXPIRED: "Expired",
}


def describe_duration(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


@dataclass(frozen=True)
class BuildRow:
    """What the tab and the page show of a build."""

    build: Build
    url: str

    @property
    def phase_label(self) -> str:
        return PHASE_LABELS.get(self.build.phase, self.build.phase)

    @property
    def state(self) -> str:
        return phase_state(self.build.phase)

    @property
    def short_id(self) -> str:
        return str(self.build.uuid)[:8]

    @property
    def source_kind(self) -> str:
        if self.build.source == Build.Source.GIT or self.build.trigger_uuid:
            return "Trigger commit"
        return self.build.get_source_display()

    @property
    def source_detail(self) -> str:
        """The URL, the file name or the commit a build came from."""
        build = self.build
        if build.source == Build.Source.URL:
            return build.archive_url
        if build.source == Build.Source.GIT or build.trigger_uuid:
            commit = (build.trigger_metadata or {}).get("commit") or (build.git or {}).get("sha") or ""
            return commit[:7]
        return build.display_name

    @property
    def started_by(self) -> str:
        if self.build.started_by is not None:
            return self.build.started_by.username
        return "build trigger" if self.build.trigger_uuid else ""

    @property
    def duration(self) -> str:
        """From the worker's start to the end (or to now, while it runs); empty before it starts."""
        build = self.build
        if build.started is None:
            return ""
        end = build.completed or (None if build.is_final else timezone.now())
        return describe_duration(end - build.started) if end else ""

    @property
    def cancellable(self) -> bool:
        return self.build.phase in CANCELLABLE


def build_url(build: Build) -> str:
    return reverse("ui:repository-build", kwargs={"repository": build.repository.full_name, "build_uuid": build.uuid})


def build_row(build: Build) -> BuildRow:
    return BuildRow(build=build, url=build_url(build))


# --- The Builds tab --------------------------------------------------------------------------------


def _page_number(value) -> int:
    try:
        return min(max(int(value), 1), MAX_PAGE)
    except (TypeError, ValueError):
        return 1


def builds_context(request, access: RepositoryAccess, **bound) -> dict:
    page = _page_number(request.GET.get("page"))
    rows = build_selectors.builds_for_repository(repository=access.repository)
    total = rows.count()
    offset = (page - 1) * BUILDS_PER_PAGE
    builds = list(rows[offset : offset + BUILDS_PER_PAGE])
    pages = max(math.ceil(total / BUILDS_PER_PAGE), 1)
    base = repository_url(access.repository, "builds")

    def page_url(number: int) -> str:
        return f"{base}&{urlencode({'page': number})}" if number > 1 else base

    return {
        "build_rows": [build_row(build) for build in builds],
        "builds_total": total,
        "builds_page": page,
        "builds_pages": pages,
        "builds_previous_url": page_url(page - 1) if page > 1 else None,
        "builds_next_url": page_url(page + 1) if page < pages else None,
        "new_build_url": reverse("ui:repository-build-new", kwargs={"repository": access.repository.full_name}),
    }


class BuildsTab(RepositoryTab):
    """Only while builds are enabled: a switched-off feature is not shown at all."""

    def unavailable(self) -> str | None:
        return None if builds_enabled() else DISABLED_MESSAGE


register_tab(
    BuildsTab("builds", "Builds", "ui/repository/tab_builds.html", builds_context, kinds=("image",)), after="history"
)


# --- New Dockerfile Build --------------------------------------------------------------------------


ARCHIVE_TYPES = {
    ".tar.gz": "application/gzip",
    ".tgz": "application/gzip",
    ".tar": "application/x-tar",
    ".zip": "application/zip",
}


def upload_mime_type(name: str) -> str:
    """Archives by their extension; anything else is a Dockerfile (Quay accepts either)."""
    lowered = name.lower()
    for suffix, mime_type in ARCHIVE_TYPES.items():
        if lowered.endswith(suffix):
            return mime_type
    return "text/plain"


class BuildForm(forms.UiForm):
    """The New Dockerfile Build form. Only the shape of the input is checked here; everything
    the API checks too (tags, URL, robot, queue limit) is the service's error, shown inline."""

    SOURCE_CHOICES = [("upload", "Upload a Dockerfile or an archive"), ("url", "From a URL")]

    source = django_forms.ChoiceField(label="Build source", choices=SOURCE_CHOICES, initial="upload")
    upload = django_forms.FileField(
        label="Dockerfile or archive",
        required=False,
        help_text="A Dockerfile, or a .tar.gz, .tar or .zip build context with a Dockerfile in it.",
    )
    archive_url = django_forms.CharField(
        label="URL",
        required=False,
        max_length=2048,
        help_text="An http:// or https:// address of a Dockerfile or an archive; the registry downloads it.",
        widget=django_forms.URLInput(attrs={"placeholder": "https://example.com/context.tar.gz"}),
    )
    tags = django_forms.CharField(
        label="Tags",
        initial="latest",
        max_length=2048,
        help_text="The tags the built image gets, separated by commas or spaces.",
    )
    subdirectory = django_forms.CharField(
        label="Context directory",
        required=False,
        max_length=1024,
        help_text="For an archive: the directory inside it that is the build context (empty: the whole archive).",
    )
    dockerfile_path = django_forms.CharField(
        label="Dockerfile path",
        required=False,
        max_length=1024,
        help_text="For an archive: the Dockerfile's path inside the context (empty: Dockerfile).",
    )
    pull_robot = django_forms.ChoiceField(
        label="Pull robot",
        required=False,
        help_text="A robot account whose credentials pull private base images.",
    )

    def __init__(self, *args, robots: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pull_robot"].choices = [("", "None"), *[(name, name) for name in robots]]

    def clean(self):
        data = super().clean()
        source = data.get("source")
        if source == "upload" and not data.get("upload"):
            self.add_error("upload", "Choose a Dockerfile or an archive to upload.")
        if source == "url" and not (data.get("archive_url") or "").strip():
            self.add_error("archive_url", "Enter the URL of a Dockerfile or an archive.")
        tags = [tag for tag in (data.get("tags") or "").replace(",", " ").split() if tag]
        if not tags:
            self.add_error("tags", "Enter at least one tag.")
        elif len(tags) > TAGS_MAX:
            self.add_error("tags", f"At most {TAGS_MAX} tags.")
        data["tag_list"] = list(dict.fromkeys(tags))
        return data

    def add_service_error(self, error: BuildError) -> None:
        """The service's message next to the input it is about (the rest above the form)."""
        message = str(error)
        lowered = message.lower()
        if isinstance(error, BuildQueueFull | BuildsDisabled):
            field = None
        elif isinstance(error, PackageError):
            field = "archive_url" if self.cleaned_data.get("source") == "url" else "upload"
        elif isinstance(error, BuildNotFound | BuildForbidden) or "robot" in lowered:
            field = "pull_robot"
        elif "dockerfile_path" in lowered:
            field = "dockerfile_path"
        elif "subdirectory" in lowered or "context" in lowered:
            field = "subdirectory"
        elif re.search(r"\btags?\b", lowered):
            field = "tags"
        else:
            field = None
        self.add_error(field, message)


def pull_robot_names(access: RepositoryAccess) -> list[str]:
    return [robot.user.username for robot in account_selectors.robots_of(namespace=access.repository.namespace)]


def start_build(request, access: RepositoryAccess, data: dict) -> Build:
    """Store an upload as a package (as Quay's filedrop does) and queue its build, or queue a
    build of a URL. An upload whose build is refused is removed again: nothing stays behind."""
    principal = principal_of(request)
    common = {
        "repository": access.repository,
        "principal": principal,
        "tags": data["tag_list"],
        "subdirectory": data["subdirectory"].strip(),
        "dockerfile_path": data["dockerfile_path"].strip(),
        "pull_robot": data["pull_robot"] or None,
        "ip": client_ip(request),
    }
    if data["source"] == "url":
        return build_services.build_create(archive_url=data["archive_url"].strip(), **common)
    upload = data["upload"]
    package = build_services.package_create(owner=request.user, mime_type=upload_mime_type(upload.name))
    try:
        package = build_services.package_upload(package=package, stream=upload, length=upload.size)
        return build_services.build_create(package=package, **common)
    except BuildError:
        build_services.package_delete(package=package)
        raise


def _writer_access(request, repository: str) -> RepositoryAccess:
    return repository_access(request, repository, need=Role.WRITE)


def render_new(request, access: RepositoryAccess, form: BuildForm, *, status: int = 200):
    context = {"repository": access.repository, "access": access, "form": form}
    return render(request, "ui/repository/build_new.html", context, status=status)


@method_decorator(never_cache, name="dispatch")
class BuildCreateView(UiView):
    """``/-/builds/new``: the form; its POST stores the source and queues the build, then opens
    the build's page. A refusal (disabled, queue full, bad URL or tags) comes back inline with
    the input kept and nothing stored."""

    sign_in_required = True

    def get(self, request, repository):
        access = _writer_access(request, repository)
        if not builds_enabled():
            return error_page(request, 404, DISABLED_MESSAGE, "Builds are not enabled")
        return render_new(request, access, BuildForm(robots=pull_robot_names(access)))

    def post(self, request, repository):
        access = _writer_access(request, repository)
        if not builds_enabled():
            return error_page(request, 404, DISABLED_MESSAGE, "Builds are not enabled")
        form = BuildForm(request.POST, request.FILES, robots=pull_robot_names(access))
        if not form.is_valid():
            return render_new(request, access, form, status=400)
        try:
            build = start_build(request, access, form.cleaned_data)
        except BuildError as exc:
            form.add_service_error(exc)
            return render_new(request, access, form, status=exc.status)
        messages.success(request, f"Started build {str(build.uuid)[:8]}.")
        return redirect(build_url(build))


# --- A build's page --------------------------------------------------------------------------------


def websocket_url(request, build: Build) -> str:
    """Where the browser follows the build: ``WS_PUBLIC_URL`` or ws://<this host>:<WS_PORT>."""
    base = (settings.WS_PUBLIC_URL or "").rstrip("/")
    if not base:
        host = urlsplit(f"//{request.get_host()}").hostname or "localhost"
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
        base = f"{'wss' if request.is_secure() else 'ws'}://{host}:{settings.WS_PORT}"
    return f"{base}/ws/build/{build.uuid}/"


def websocket_origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def log_line_class(entry: dict) -> str:
    """An entry as ``build_logs`` returns it (``{message, type?, data?}``)."""
    return {
        BuildLogEntry.Type.COMMAND: "log-command",
        BuildLogEntry.Type.PHASE: "log-phase",
        BuildLogEntry.Type.ERROR: "log-error",
    }.get(entry.get("type", ""), "log-output")


def log_line_text(entry: dict) -> str:
    """The line as shown: a phase entry names the phase (and why, when the manager said)."""
    message = str(entry.get("message", "")).rstrip("\n")
    if entry.get("type") != BuildLogEntry.Type.PHASE:
        return message
    reason = (entry.get("data") or {}).get("reason")
    label = PHASE_LABELS.get(message, message)
    return f"Phase: {label} ({reason})" if reason else f"Phase: {label}"


def _build_of(access: RepositoryAccess, build_uuid) -> Build:
    build = build_selectors.build_by_uuid(repository=access.repository, build_uuid=build_uuid)
    if build is None:
        raise Http404("No such build")
    return build


@method_decorator(never_cache, name="dispatch")
class BuildView(UiView):
    """``/repository/<r>/build/<uuid>``: readers see the build; writers may cancel it."""

    def get(self, request, repository, build_uuid):
        access = repository_access(request, repository, need=Role.READ)
        if not builds_enabled():
            return error_page(request, 404, DISABLED_MESSAGE, "Builds are not enabled")
        build = _build_of(access, build_uuid)
        if request.GET.get("part") == "summary":
            # What build.js swaps in when the phase changes (times, error, digests).
            context = {"repository": access.repository, "access": access, "row": build_row(build), "build": build}
            return render(request, "ui/repository/build_summary.html", context)
        entries, _total = build_selectors.build_logs(build=build, start=0)
        entries = entries[:PAGE_LOG_ENTRIES]
        ws_url = websocket_url(request, build)
        context = {
            "repository": access.repository,
            "access": access,
            "row": build_row(build),
            "build": build,
            "log_lines": [(log_line_text(entry), log_line_class(entry)) for entry in entries],
            "log_next": len(entries),
            "ws_url": ws_url,
            "poll_url": f"/api/v1/repository/{access.repository.full_name}/build/{build.uuid}/logs",
            "status_url": f"/api/v1/repository/{access.repository.full_name}/build/{build.uuid}/status",
            "summary_url": f"{request.path}?part=summary",
            "final_phases": " ".join(sorted(FINAL_PHASES)),
            "cancellable_phases": " ".join(CANCELLABLE),
            "phase_labels": {str(phase): label for phase, label in PHASE_LABELS.items()},
        }
        response = render(request, "ui/repository/build.html", context)
        # The live log comes from the websocket process, another origin than the page's.
        response._csp_update = {"connect-src": [websocket_origin(ws_url)]}
        return response


class BuildCancelView(UiView):
    """POST: cancel a build that has not started pushing (writers)."""

    sign_in_required = True
    http_method_names = ["post"]

    def post(self, request, repository, build_uuid):
        access = _writer_access(request, repository)
        if not builds_enabled():
            return error_page(request, 404, DISABLED_MESSAGE, "Builds are not enabled")
        build = _build_of(access, build_uuid)
        try:
            build_services.build_cancel(build=build, principal=principal_of(request), ip=client_ip(request))
        except BuildError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Cancelled build {str(build.uuid)[:8]}.")
        return redirect(build_url(build))
