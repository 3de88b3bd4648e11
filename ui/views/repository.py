"""The repository page: tabs, and the Settings tab's changes.

URL scheme (Quay's): ``/repository/<namespace>/<name>?tab=<slug>``. Repository names may contain
``/``, so the tab is a query parameter, and the routes that change a repository sit behind a
``/-/`` segment (``/repository/<ns>/<name>/-/visibility``) that no repository name can contain.

Tabs are ``RepositoryTab`` entries in ``TABS``, in display order; each names the least role
that sees it, the template of its panel and a function that builds the panel's context. A
feature adds its tab with ``register_tab`` (see ui/README.md): the page, the tab bar, htmx tab
switching and the 403 for a tab the caller may not open come with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib import messages
from django.core import signing
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from registry import selectors as registry_selectors
from registry import services as registry_services
from registry.models import Repository, Role, UsageLog
from squash import selectors as squash_selectors
from ui import forms
from ui import selectors as ui_selectors
from ui.access import Forbidden, RepositoryAccess, client_ip, principal_of, repository_access
from ui.views.base import UiView, htmx_target

BODY_ID = "repository-body"
LOGS_PER_PAGE = 50
LOGS_DAYS = 30


@dataclass(frozen=True)
class RepositoryTab:
    slug: str
    label: str
    template: str
    context: Callable[..., dict]  # (request, access, **bound_forms) -> panel context
    need: str = Role.READ
    kinds: tuple[str, ...] = (Repository.Kind.IMAGE, Repository.Kind.APPLICATION)

    def unavailable(self) -> str | None:
        """Why the tab's feature is switched off (None: it is on). Such a tab is not shown, and
        its ``?tab=`` is an unknown tab. Features that can be off override this."""
        return None

    def shown_to(self, access: RepositoryAccess) -> bool:
        return access.can(self.need) and access.repository.kind in self.kinds and self.unavailable() is None


def registry_host(request) -> str:
    return settings.SERVER_HOSTNAME or request.get_host()


def pull_commands(request, repository: Repository, tag: str) -> list[tuple[str, str]]:
    """(label, command) pairs for the Information tab."""
    ref = f"{registry_host(request)}/{repository.full_name}"
    if repository.kind == Repository.Kind.APPLICATION:
        return [("oras", f"oras pull {ref}:{tag}"), ("helm", f"helm pull oci://{ref} --version {tag}")]
    return [("podman", f"podman pull {ref}:{tag}"), ("docker", f"docker pull {ref}:{tag}")]


def information_context(request, access: RepositoryAccess, **bound) -> dict:
    summary = ui_selectors.repository_summary(repository=access.repository)
    tag = summary.recent_tags[0].name if summary.recent_tags else "latest"
    return {"summary": summary, "pull_commands": pull_commands(request, access.repository, tag)}


def _logs_cursor(request) -> registry_selectors.LogCursor | None:
    token = request.GET.get("logs_after")
    if not token:
        return None
    try:
        value = signing.loads(token, salt="ui-repository-logs")
        return registry_selectors.LogCursor(created=datetime.fromisoformat(value["c"]), pk=int(value["p"]))
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None


def _log_label(kind: str) -> str:
    try:
        return UsageLog.Kind(kind).name.replace("_", " ").capitalize()
    except ValueError:
        return kind


def logs_context(request, access: RepositoryAccess, **bound) -> dict:
    now = timezone.now()
    entries, following = registry_selectors.usage_logs_page(
        start=now - timedelta(days=LOGS_DAYS),
        end=now + timedelta(seconds=1),
        limit=LOGS_PER_PAGE,
        repository=access.repository,
        after=_logs_cursor(request),
    )
    next_token = None
    if following is not None:
        next_token = signing.dumps({"c": following.created.isoformat(), "p": following.pk}, salt="ui-repository-logs")
    rows = [
        {
            "entry": entry,
            "label": _log_label(entry.kind),
            "details": [
                (key, value) for key, value in sorted(entry.metadata.items()) if key not in ("repo", "namespace")
            ],
        }
        for entry in entries
    ]
    return {"log_rows": rows, "logs_next": next_token, "logs_days": LOGS_DAYS}


def settings_context(request, access: RepositoryAccess, **bound) -> dict:
    repository = access.repository
    context = {
        "description_form": bound.get("description_form")
        or forms.DescriptionForm(initial={"description": repository.description}),
    }
    if access.is_admin:
        context.update(
            {
                "visibility_form": bound.get("visibility_form")
                or forms.VisibilityForm(initial={"visibility": repository.visibility}),
                "permission_form": bound.get("permission_form") or forms.PermissionForm(),
                "delete_form": bound.get("delete_form") or forms.RepositoryDeleteForm(repository=repository),
                "user_permissions": registry_selectors.repository_user_permissions(repository=repository),
                "team_permissions": registry_selectors.repository_team_permissions(repository=repository),
                "robot_names": ui_selectors.repository_robot_candidates(repository=repository),
                "team_names": ui_selectors.repository_team_candidates(repository=repository),
                "role_choices": forms.ROLE_CHOICES,
            }
        )
        from ui.views.notifications import settings_notifications  # it imports this module

        context["notification_rows"] = settings_notifications(repository)
        context["squash_at_push"] = squash_selectors.squash_at_push(repository=repository)
    return context


TABS: list[RepositoryTab] = [
    RepositoryTab("info", "Information", "ui/repository/tab_info.html", information_context),
    RepositoryTab("logs", "Usage Logs", "ui/repository/tab_logs.html", logs_context, need=Role.ADMIN),
    RepositoryTab("settings", "Settings", "ui/repository/tab_settings.html", settings_context, need=Role.WRITE),
]
DEFAULT_TAB = "info"


def register_tab(tab: RepositoryTab, *, after: str | None = None) -> None:
    """Add (or replace) a tab, placed right after the tab ``after`` (at the end without it)."""
    existing = [index for index, other in enumerate(TABS) if other.slug == tab.slug]
    if existing:
        TABS[existing[0]] = tab
        return
    positions = [index for index, other in enumerate(TABS) if other.slug == after]
    TABS.insert(positions[0] + 1 if positions else len(TABS), tab)


def tab_by_slug(slug: str | None) -> RepositoryTab:
    for tab in TABS:
        if tab.slug == slug and tab.unavailable() is None:
            return tab
    return tab_by_slug(DEFAULT_TAB)


def repository_url(repository: Repository, tab: str | None = None) -> str:
    url = reverse("ui:repository", kwargs={"repository": repository.full_name})
    return f"{url}?tab={tab}" if tab and tab != DEFAULT_TAB else url


def render_repository(request, access: RepositoryAccess, tab: RepositoryTab, *, status: int = 200, **bound):
    """The repository page on ``tab`` (the body fragment alone for an htmx tab switch)."""
    if not tab.shown_to(access):
        needed = "write" if tab.need == Role.WRITE else "admin"
        raise Forbidden(f"The {tab.label} tab of {access.repository.full_name} needs the {needed} role.")
    context = {
        "repository": access.repository,
        "access": access,
        "tabs": [other for other in TABS if other.shown_to(access)],
        "tab": tab,
        "starred": request.user.is_authenticated
        and registry_selectors.repository_is_starred(user=request.user, repository=access.repository),
        **tab.context(request, access, **bound),
    }
    template = "ui/repository/page.html"
    if htmx_target(request) == BODY_ID:
        template = "ui/repository/_body.html"
    return render(request, template, context, status=status)


class RepositoryView(UiView):
    def get(self, request, repository):
        access = repository_access(request, repository, need=Role.READ)
        return render_repository(request, access, tab_by_slug(request.GET.get("tab")))


# --- Settings tab changes -------------------------------------------------------------------------


class _SettingsChange(UiView):
    """A POST from the Settings tab: success redirects back to it with a message; a form error
    re-renders it with the input kept (400); a missing role is a 403."""

    sign_in_required = True
    http_method_names = ["post"]
    need = Role.ADMIN

    def post(self, request, repository):
        access = repository_access(request, repository, need=self.need)
        return self.change(request, access)

    def change(self, request, access: RepositoryAccess):
        raise NotImplementedError

    def done(self, request, access: RepositoryAccess, message: str):
        messages.success(request, message)
        return redirect(repository_url(access.repository, "settings"))

    def failed(self, request, access: RepositoryAccess, **bound):
        return render_repository(request, access, tab_by_slug("settings"), status=400, **bound)


class DescriptionChangeView(_SettingsChange):
    need = Role.WRITE

    def change(self, request, access):
        form = forms.DescriptionForm(request.POST)
        if not form.is_valid():
            return self.failed(request, access, description_form=form)
        registry_services.repository_set_description(
            repository=access.repository,
            description=form.cleaned_data["description"],
            principal=principal_of(request),
            ip=client_ip(request),
        )
        return self.done(request, access, "Saved the description.")


class VisibilityChangeView(_SettingsChange):
    def change(self, request, access):
        form = forms.VisibilityForm(request.POST)
        if not form.is_valid():
            return self.failed(request, access, visibility_form=form)
        visibility = form.cleaned_data["visibility"]
        registry_services.repository_set_visibility(
            repository=access.repository, visibility=visibility, principal=principal_of(request), ip=client_ip(request)
        )
        return self.done(request, access, f"{access.repository.full_name} is now {visibility}.")


class PermissionChangeView(_SettingsChange):
    """Grant or change the role of a user, robot or team."""

    def change(self, request, access):
        form = forms.PermissionForm(request.POST)
        if not form.is_valid():
            return self.failed(request, access, permission_form=form)
        kind, name, role = form.cleaned_data["kind"], form.cleaned_data["name"].strip(), form.cleaned_data["role"]
        try:
            if kind == "team":
                registry_services.repository_permission_set_team(
                    repository=access.repository,
                    team_name=name,
                    role=role,
                    principal=principal_of(request),
                    ip=client_ip(request),
                )
            else:
                registry_services.repository_permission_set_user(
                    repository=access.repository,
                    username=name,
                    role=role,
                    principal=principal_of(request),
                    ip=client_ip(request),
                )
        except registry_services.RequestRefused as exc:
            form.add_error("name", str(exc))
            return self.failed(request, access, permission_form=form)
        who = f"team {name}" if kind == "team" else name
        return self.done(request, access, f"Gave {who} the {role} role.")


class PermissionDeleteView(_SettingsChange):
    def change(self, request, access):
        form = forms.PermissionDeleteForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose a permission to remove.")
            return self.failed(request, access)
        kind, name = form.cleaned_data["kind"], form.cleaned_data["name"]
        try:
            if kind == "team":
                registry_services.repository_permission_delete_team(
                    repository=access.repository, team_name=name, principal=principal_of(request), ip=client_ip(request)
                )
            else:
                registry_services.repository_permission_delete_user(
                    repository=access.repository, username=name, principal=principal_of(request), ip=client_ip(request)
                )
        except registry_services.RequestRefused as exc:
            messages.error(request, str(exc))
            return self.failed(request, access)
        who = f"team {name}" if kind == "team" else name
        return self.done(request, access, f"Removed the permission of {who}.")


class RepositoryDeleteView(_SettingsChange):
    def change(self, request, access):
        form = forms.RepositoryDeleteForm(request.POST, repository=access.repository)
        if not form.is_valid():
            return self.failed(request, access, delete_form=form)
        name = access.repository.full_name
        registry_services.repository_delete(
            repository=access.repository, principal=principal_of(request), ip=client_ip(request)
        )
        messages.success(request, f"Deleted the repository {name}.")
        return redirect("ui:repository-list")
