"""Build triggers in the web UI (guide chapters 3, 6.3 and 7): the Builds tab's *Build Triggers*
section and the pages behind it, for repository admins.

- The section (admins, on the Builds tab): every trigger of the repository with its service,
  build source, branch/tag filter, state (and why it is disabled) and pull robot, a gear menu
  (View Credentials, Run Now, Enable/Disable, Delete) and *Create Build Trigger*: Custom Git
  always, GitHub/GitLab/Bitbucket only while the superuser has their OAuth application enabled
  (``triggers.selectors.enabled_providers``).
- Custom git (``/-/triggers/new/custom-git``): one form (git URL, pull robot chosen by hand,
  filter, context, Dockerfile path, tag templates, default tag rules) creating and activating the
  trigger in one transaction, then its credentials page (SSH public key, webhook URL).
- GitHub, GitLab, Bitbucket (``/-/triggers/new/<service>``): *Connect* creates the trigger and
  sends the browser to the provider's authorize URL; the OAuth callback (``triggers.views``)
  brings it back to the setup page, which lists the connected account's namespaces, then their
  repositories, then takes the filter, context, Dockerfile path and robot and activates.

Views are thin: reads through ``triggers.selectors``, every check and write in
``triggers.services``, whose error messages name the config key they are about; each is shown
next to its input, and a refused request stores nothing. Everything needs the admin role on the
repository (readers and writers 403, others 404) and builds switched on (404 otherwise), as the
trigger API and the builds pages do.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from django import forms as django_forms
from django.contrib import messages
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache

from accounts import selectors as account_selectors
from builds.errors import BuildError
from registry.models import Repository, Role
from triggers import providers, selectors, services
from triggers.models import BuildTrigger
from ui import forms
from ui.access import RepositoryAccess, client_ip, principal_of, repository_access
from ui.views import builds
from ui.views.base import UiView, error_page
from ui.views.repository import TABS, register_tab, repository_url

SECTION_ANCHOR = "build-triggers"
# A short mark per service for the list (no remote images: the CSP allows our own only).
SERVICE_MARKS = {"custom-git": "git", "github": "GH", "gitlab": "GL", "bitbucket": "BB"}
SETUP_STEPS = ("connect", "namespace", "source", "config")


def _service_title(service: str) -> str:
    return BuildTrigger.Service(service).label


def kind_label(service: str) -> str:
    """Quay's names for the kinds of the Create Build Trigger menu."""
    return f"{_service_title(service)} Repository Push"


# --- Access ------------------------------------------------------------------------------------------


class _BuildsOff(Exception):
    """Builds are switched off: trigger pages answer 404 with the builds pages' message."""


class _TriggerPage(UiView):
    sign_in_required = True

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        except _BuildsOff:
            return error_page(request, 404, builds.DISABLED_MESSAGE, "Builds are not enabled")


def _admin_access(request, repository: str) -> RepositoryAccess:
    access = repository_access(request, repository, need=Role.ADMIN)
    if access.repository.kind != Repository.Kind.IMAGE:
        # As the trigger API: application repositories have no builds, so no triggers.
        raise Http404("No build triggers for application repositories")
    if not builds.builds_enabled():
        raise _BuildsOff()
    return access


def _trigger_of(access: RepositoryAccess, trigger_uuid) -> BuildTrigger:
    trigger = selectors.trigger_by_uuid(trigger_uuid=trigger_uuid, repository=access.repository)
    if trigger is None:
        raise Http404("No such build trigger")
    return trigger


def builds_tab_url(repository: Repository) -> str:
    return repository_url(repository, "builds") + f"#{SECTION_ANCHOR}"


def _url(name: str, repository: Repository, trigger: BuildTrigger | None = None, **kwargs) -> str:
    kwargs["repository"] = repository.full_name
    if trigger is not None:
        kwargs["trigger_uuid"] = trigger.uuid
    return reverse(f"ui:repository-trigger-{name}", kwargs=kwargs)


def _provider_origin(service: str) -> str | None:
    """The provider's web origin (where its authorize page is), for the page's CSP ``form-action``:
    browsers apply that directive to the redirect a form's POST answers with, too."""
    try:
        parts = urlsplit(providers.provider_for(service).web_url)
    except providers.ProviderError:
        return None
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def _allow_provider_form(response, service: str):
    origin = _provider_origin(service)
    if origin:
        response._csp_update = {"form-action": [origin]}
    return response


# --- The section of the Builds tab ---------------------------------------------------------------


@dataclass(frozen=True)
class TriggerRow:
    """What the list shows of a trigger."""

    trigger: BuildTrigger

    @property
    def service_label(self) -> str:
        return self.trigger.get_service_display()

    @property
    def mark(self) -> str:
        return SERVICE_MARKS.get(self.trigger.service, "?")

    @property
    def is_provider(self) -> bool:
        return self.trigger.service in providers.SERVICES

    @property
    def source_url(self) -> str:
        url = (self.trigger.remote or {}).get("html_url") or ""
        return url if url.startswith(("https://", "http://")) else ""

    @property
    def filter_label(self) -> str:
        regex = self.trigger.config.get("branchtag_regex")
        return regex or ""

    @property
    def state(self) -> str:
        if not self.trigger.is_active:
            return "inactive"
        return "enabled" if self.trigger.enabled else "disabled"

    @property
    def disabled_label(self) -> str:
        trigger = self.trigger
        return trigger.get_disabled_reason_display() if not trigger.enabled and trigger.disabled_reason else ""

    @property
    def pull_robot(self) -> str:
        return self.trigger.pull_robot.username if self.trigger.pull_robot else ""


def triggers_context(request, access: RepositoryAccess) -> dict:
    repository = access.repository
    rows = [TriggerRow(trigger) for trigger in selectors.triggers_of(repository=repository)]
    kinds = [("custom-git", kind_label("custom-git"), _url("new-custom", repository), SERVICE_MARKS["custom-git"])]
    kinds += [
        (service, kind_label(service), _url("new-provider", repository, service=service), SERVICE_MARKS[service])
        for service in selectors.enabled_providers()
    ]
    # The REST flow's OAuth callback lands on ?tab=builds&trigger_setup=<uuid>: point at the setup.
    resume = None
    wanted = request.GET.get("trigger_setup")
    if wanted:
        resume = next(
            (row for row in rows if str(row.trigger.uuid) == wanted and not row.trigger.is_active and row.is_provider),
            None,
        )
    return {"trigger_rows": rows, "trigger_kinds": kinds, "trigger_resume": resume}


def _with_triggers(context_function):
    def context(request, access: RepositoryAccess, **bound) -> dict:
        result = context_function(request, access, **bound)
        if access.is_admin:
            result.update(triggers_context(request, access))
        return result

    return context


# The Builds tab is the builds module's; its panel gets the trigger section for admins. The tab is
# re-registered with its context extended (register_tab replaces a tab of the same slug in place).
_builds_tab = next(tab for tab in TABS if tab.slug == "builds")
register_tab(dataclasses.replace(_builds_tab, context=_with_triggers(_builds_tab.context)))


# --- Forms -------------------------------------------------------------------------------------------

_KEY_RE = re.compile(r"^(build_source|branchtag_regex|context|subdir|dockerfile_path|tag_templates)\b")
_KEY_FIELDS = {"subdir": "context"}


class TriggerConfigForm(forms.UiForm):
    """The trigger config's inputs (the service checks them; its error names the key)."""

    branchtag_regex = django_forms.CharField(
        label="Branch/tag filter",
        required=False,
        max_length=1024,
        help_text="A regular expression matched against all of heads/BRANCH or tags/TAG, such as "
        "heads/main|tags/v.*; empty builds every branch and tag.",
    )
    context = django_forms.CharField(
        label="Context directory",
        required=False,
        max_length=1024,
        help_text="The build context inside the git repository, such as subdir; empty: its root.",
    )
    dockerfile_path = django_forms.CharField(
        label="Dockerfile path",
        required=False,
        max_length=1024,
        help_text="Inside the context, such as subdir/Dockerfile; empty: Dockerfile in the context.",
    )
    tag_templates = django_forms.CharField(
        label="Tag templates",
        required=False,
        widget=django_forms.Textarea(attrs={"rows": 3}),
        help_text="One per line, such as ${commit_info.short_sha} or v-${branch}; a template naming "
        "something the push does not have gives no tag.",
    )
    default_tag_from_ref = django_forms.BooleanField(
        label="Tag with the branch or tag name", required=False, initial=True
    )
    latest_for_default_branch = django_forms.BooleanField(
        label="Tag latest for the default branch", required=False, initial=True
    )
    pull_robot = django_forms.ChoiceField(
        label="Pull robot",
        required=False,
        help_text="A robot account of this namespace whose credentials pull private base images.",
    )

    def __init__(self, *args, robots: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pull_robot"].choices = [("", "None"), *[(name, name) for name in robots]]

    def config(self) -> dict:
        data = self.cleaned_data
        templates = [line.strip() for line in (data.get("tag_templates") or "").splitlines() if line.strip()]
        config = {
            "build_source": data.get("build_source", ""),
            "context": data.get("context", ""),
            "dockerfile_path": data.get("dockerfile_path", ""),
            "default_tag_from_ref": bool(data.get("default_tag_from_ref")),
            "latest_for_default_branch": bool(data.get("latest_for_default_branch")),
        }
        if data.get("branchtag_regex"):
            config["branchtag_regex"] = data["branchtag_regex"]
        if templates:
            config["tag_templates"] = templates
        return config

    def robot(self):
        name = self.cleaned_data.get("pull_robot")
        return account_selectors.user_by_name(username=name) if name else None

    def add_service_error(self, error: Exception) -> None:
        """The service's message next to the input it names (the rest above the form)."""
        message = str(error)
        match = _KEY_RE.match(message)
        if match:
            field = _KEY_FIELDS.get(match.group(1), match.group(1))
        elif "tag template" in message.lower():
            field = "tag_templates"
        elif "robot" in message.lower():
            field = "pull_robot"
        else:
            field = None
        if field not in self.fields:
            field = None
        self.add_error(field, message)


class CustomGitForm(TriggerConfigForm):
    field_order = ["build_source", "pull_robot"]

    build_source = django_forms.CharField(
        label="Git repository URL",
        max_length=2048,
        help_text="The URL the builder clones over SSH, such as git@git.example.com:team/app.git or "
        "ssh://git@git.example.com/team/app.git.",
        widget=django_forms.TextInput(attrs={"placeholder": "git@git.example.com:team/app.git", "spellcheck": "false"}),
    )


class ProviderActivateForm(TriggerConfigForm):
    build_source = django_forms.CharField(max_length=255, widget=django_forms.HiddenInput)
    namespace = django_forms.CharField(required=False, max_length=255, widget=django_forms.HiddenInput)


class RunForm(forms.UiForm):
    KINDS = [("branch", "Branch"), ("tag", "Tag"), ("commit", "Commit SHA")]

    kind = django_forms.ChoiceField(label="Build", choices=KINDS, initial="branch")
    name = django_forms.CharField(
        label="Branch, tag or commit",
        required=False,
        max_length=255,
        widget=django_forms.TextInput(attrs={"spellcheck": "false", "list": "trigger-refs"}),
    )

    def add_service_error(self, error: Exception) -> None:
        message = str(error)
        lowered = message.lower()
        field = None
        if lowered.startswith(("commit_sha", "refs.", "missing required parameter", "could not find")):
            field = "name"
        self.add_error(field, message)


def _robot_names(access: RepositoryAccess) -> list[str]:
    return builds.pull_robot_names(access)


# --- Custom git ------------------------------------------------------------------------------------


def _render_custom_new(request, access, form, *, status=200):
    context = {"repository": access.repository, "access": access, "form": form}
    return render(request, "ui/repository/trigger_new_custom.html", context, status=status)


@method_decorator(never_cache, name="dispatch")
class CustomGitCreateView(_TriggerPage):
    """``/-/triggers/new/custom-git``: the form; its POST creates and activates the trigger (one
    transaction: a refused config stores nothing) and opens its credentials."""

    def get(self, request, repository):
        access = _admin_access(request, repository)
        return _render_custom_new(request, access, CustomGitForm(robots=_robot_names(access)))

    def post(self, request, repository):
        access = _admin_access(request, repository)
        form = CustomGitForm(request.POST, robots=_robot_names(access))
        if not form.is_valid():
            return _render_custom_new(request, access, form, status=400)
        config = form.config()
        try:
            trigger, _secret = services.trigger_create_custom_git(
                repository=access.repository,
                principal=principal_of(request),
                build_source=config.pop("build_source"),
                pull_robot=form.robot(),
                config=config,
                ip=client_ip(request),
            )
        except services.TriggerError as exc:
            form.add_service_error(exc)
            return _render_custom_new(request, access, form, status=exc.status)
        messages.success(
            request, "Created the custom git trigger. Give the git server its SSH key and webhook URL below."
        )
        return redirect(_url("credentials", access.repository, trigger))


# --- GitHub, GitLab, Bitbucket: connect, pick, activate ----------------------------------------------


def _provider_or_404(service: str) -> str:
    if service not in providers.SERVICES or service not in selectors.enabled_providers():
        raise Http404("This git provider is not enabled")
    return service


def _render_connect(request, access, service: str, *, trigger: BuildTrigger | None = None, status=200, error=""):
    context = {
        "repository": access.repository,
        "access": access,
        "service": service,
        "service_title": _service_title(service),
        "trigger": trigger,
        "error": error,
        "action": _url("connect", access.repository, trigger)
        if trigger
        else _url("new-provider", access.repository, service=service),
        "other_user": trigger.connected_user
        if trigger and trigger.auth_token_encrypted and trigger.connected_user_id != request.user.pk
        else None,
    }
    response = render(request, "ui/repository/trigger_connect.html", context, status=status)
    return _allow_provider_form(response, service)


def _start_connect(request, access, trigger: BuildTrigger):
    """To the provider's authorize page; it sends the browser back to the setup page."""
    url = services.trigger_connect_start(
        trigger=trigger, principal=principal_of(request), return_to=_url("setup", access.repository, trigger)
    )
    return HttpResponseRedirect(url)


@method_decorator(never_cache, name="dispatch")
class ProviderCreateView(_TriggerPage):
    """``/-/triggers/new/<service>``: what connecting asks for; the POST creates the trigger and
    sends the browser to the provider (a trigger whose connection cannot start is removed again)."""

    def get(self, request, repository, service):
        access = _admin_access(request, repository)
        return _render_connect(request, access, _provider_or_404(service))

    def post(self, request, repository, service):
        access = _admin_access(request, repository)
        service = _provider_or_404(service)
        principal = principal_of(request)
        try:
            trigger = services.trigger_create(repository=access.repository, service=service, principal=principal)
        except services.TriggerError as exc:
            return _render_connect(request, access, service, status=exc.status, error=str(exc))
        try:
            return _start_connect(request, access, trigger)
        except services.TriggerError as exc:
            services.trigger_delete(trigger=trigger, principal=principal, ip=client_ip(request))
            return _render_connect(request, access, service, status=exc.status, error=str(exc))


class TriggerConnectView(_TriggerPage):
    """POST: (re)connect an existing provider trigger to the signed-in admin's account."""

    http_method_names = ["post"]

    def post(self, request, repository, trigger_uuid):
        access = _admin_access(request, repository)
        trigger = _trigger_of(access, trigger_uuid)
        if trigger.service not in providers.SERVICES:
            raise Http404("Only GitHub, GitLab and Bitbucket triggers connect an account")
        try:
            return _start_connect(request, access, trigger)
        except services.TriggerError as exc:
            return _render_connect(request, access, trigger.service, trigger=trigger, status=exc.status, error=str(exc))


def _setup_context(request, access, trigger: BuildTrigger, *, namespace: str, source: str, form=None) -> dict:
    """The setup page's step and what it lists; provider errors are shown, not raised."""
    principal = principal_of(request)
    context = {
        "repository": access.repository,
        "access": access,
        "trigger": trigger,
        "service_title": _service_title(trigger.service),
        "setup_url": _url("setup", access.repository, trigger),
        "namespace": namespace,
        "source": source,
        "namespaces": [],
        "sources": [],
        "refs": [],
        "error": "",
        "refs_error": "",
        "form": None,
    }
    base = context["setup_url"]
    try:
        context["namespaces"] = [
            {**row, "link": base + setup_query(str(row.get("id", "")))}
            for row in services.trigger_source_namespaces(trigger=trigger, principal=principal)
        ]
        if namespace:
            context["sources"] = [
                {**row, "link": base + setup_query(namespace, row.get("full_name", ""))}
                for row in services.trigger_sources(trigger=trigger, principal=principal, namespace=namespace)
            ]
    except services.TriggerError as exc:
        context.update(step="error", error=str(exc))
        return context
    if not source:
        context["step"] = "source" if namespace else "namespace"
        return context
    context["step"] = "config"
    context["back_link"] = base + setup_query(namespace) if namespace else base
    context["form"] = form or ProviderActivateForm(
        initial={"build_source": source, "namespace": namespace}, robots=_robot_names(access)
    )
    try:
        context["refs"] = services.trigger_field_values(
            trigger=trigger, principal=principal, field_name="refs", config={"build_source": source}
        )
    except services.TriggerError as exc:
        # The filter can be written without the list: say why it is missing.
        context["refs_error"] = str(exc)
    context["branches"] = [ref["name"] for ref in context["refs"] if ref.get("kind") == "branch"]
    context["tags"] = [ref["name"] for ref in context["refs"] if ref.get("kind") == "tag"]
    return context


def _connected_here(request, trigger: BuildTrigger) -> bool:
    return bool(trigger.auth_token_encrypted) and trigger.connected_user_id == request.user.pk


def _render_setup(request, access, trigger, *, namespace="", source="", form=None, status=200):
    if not _connected_here(request, trigger):
        error = " ".join(form.non_field_errors()) if form is not None else ""
        return _render_connect(request, access, trigger.service, trigger=trigger, status=status, error=error)
    context = _setup_context(request, access, trigger, namespace=namespace, source=source, form=form)
    response = render(request, "ui/repository/trigger_setup.html", context, status=status)
    # The page offers "Connect again" (a form whose answer redirects to the provider).
    return _allow_provider_form(response, trigger.service)


def _setup_trigger(access, trigger_uuid) -> BuildTrigger:
    trigger = _trigger_of(access, trigger_uuid)
    if trigger.service not in providers.SERVICES:
        raise Http404("Only GitHub, GitLab and Bitbucket triggers are set up here")
    return trigger


@method_decorator(never_cache, name="dispatch")
class TriggerSetupView(_TriggerPage):
    """``/-/triggers/<uuid>/setup?namespace=&source=``: connect, pick a namespace, a repository,
    then the config form (posted to ``.../activate``)."""

    def get(self, request, repository, trigger_uuid):
        access = _admin_access(request, repository)
        trigger = _setup_trigger(access, trigger_uuid)
        if trigger.is_active:
            messages.info(request, "This trigger is already set up.")
            return redirect(builds_tab_url(access.repository))
        return _render_setup(
            request,
            access,
            trigger,
            namespace=request.GET.get("namespace", "").strip()[:255],
            source=request.GET.get("source", "").strip()[:255],
        )


class TriggerActivateView(_TriggerPage):
    """POST: activate a provider trigger (deploy key and webhook added at the provider)."""

    http_method_names = ["post"]

    def post(self, request, repository, trigger_uuid):
        access = _admin_access(request, repository)
        trigger = _setup_trigger(access, trigger_uuid)
        form = ProviderActivateForm(request.POST, robots=_robot_names(access))
        namespace = request.POST.get("namespace", "")[:255]
        source = request.POST.get("build_source", "")[:255]
        if not form.is_valid():
            return _render_setup(request, access, trigger, namespace=namespace, source=source, form=form, status=400)
        try:
            trigger = services.trigger_activate_provider(
                trigger=trigger,
                config=form.config(),
                principal=principal_of(request),
                pull_robot=form.robot(),
                ip=client_ip(request),
            )
        except services.TriggerError as exc:
            form.add_service_error(exc)
            return _render_setup(
                request, access, trigger, namespace=namespace, source=source, form=form, status=exc.status
            )
        messages.success(
            request,
            f"Activated the {trigger.get_service_display()} trigger on {trigger.build_source}: "
            "its deploy key and push webhook were added there.",
        )
        return redirect(builds_tab_url(access.repository))


# --- One trigger: credentials, Run Now, enable/disable, delete ---------------------------------------


@method_decorator(never_cache, name="dispatch")
class TriggerCredentialsView(_TriggerPage):
    """View Credentials: the SSH public key, and for custom git the webhook URL with its secret."""

    def get(self, request, repository, trigger_uuid):
        access = _admin_access(request, repository)
        trigger = _trigger_of(access, trigger_uuid)
        context = {
            "repository": access.repository,
            "access": access,
            "row": TriggerRow(trigger),
            "trigger": trigger,
            "credentials": services.credentials_of(trigger),
        }
        return render(request, "ui/repository/trigger_credentials.html", context)


def _render_run(request, access, trigger, form, *, status=200):
    refs, refs_error = [], ""
    if trigger.service in providers.SERVICES and trigger.is_active:
        # Only the connected user may browse the provider account (the service's rule): others
        # type the name.
        try:
            refs = services.trigger_field_values(trigger=trigger, principal=principal_of(request), field_name="refs")
        except services.TriggerError as exc:
            refs_error = str(exc)
    context = {
        "repository": access.repository,
        "access": access,
        "row": TriggerRow(trigger),
        "trigger": trigger,
        "form": form,
        "refs": refs or [],
        "refs_error": refs_error,
        "default_branch": (trigger.remote or {}).get("default_branch", ""),
    }
    return render(request, "ui/repository/trigger_run.html", context, status=status)


@method_decorator(never_cache, name="dispatch")
class TriggerRunView(_TriggerPage):
    """Run Now: build a branch, a tag or a commit (provider triggers: empty = the default branch)."""

    def get(self, request, repository, trigger_uuid):
        access = _admin_access(request, repository)
        trigger = _trigger_of(access, trigger_uuid)
        return _render_run(request, access, trigger, RunForm())

    def post(self, request, repository, trigger_uuid):
        access = _admin_access(request, repository)
        trigger = _trigger_of(access, trigger_uuid)
        form = RunForm(request.POST)
        if not form.is_valid():
            return _render_run(request, access, trigger, form, status=400)
        kind, name = form.cleaned_data["kind"], form.cleaned_data["name"].strip()
        try:
            build = services.trigger_run_now(
                trigger=trigger,
                principal=principal_of(request),
                commit_sha=name if kind == "commit" and name else None,
                ref_kind=kind if kind != "commit" and name else None,
                ref_name=name if kind != "commit" and name else None,
            )
        except (services.TriggerError, BuildError) as exc:
            form.add_service_error(exc)
            return _render_run(request, access, trigger, form, status=exc.status)
        what = name or "the default branch"
        messages.success(request, f"Started build {str(build.uuid)[:8]} of {what}.")
        return redirect(repository_url(access.repository, "builds"))


class TriggerEnabledView(_TriggerPage):
    """POST ``enabled=1`` (Enable: also clears the failure counts) or ``enabled=0`` (Disable)."""

    http_method_names = ["post"]

    def post(self, request, repository, trigger_uuid):
        access = _admin_access(request, repository)
        trigger = _trigger_of(access, trigger_uuid)
        enabled = request.POST.get("enabled") == "1"
        try:
            services.trigger_update(
                trigger=trigger, principal=principal_of(request), enabled=enabled, ip=client_ip(request)
            )
        except services.TriggerError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request, f"{'Enabled' if enabled else 'Disabled'} the {TriggerRow(trigger).service_label} trigger."
            )
        return redirect(builds_tab_url(access.repository))


class TriggerDeleteView(_TriggerPage):
    """POST: delete a trigger (``force=1``: even when the provider's key or hook cannot be
    removed; the page that offers it shows the provider's error)."""

    http_method_names = ["post"]

    def post(self, request, repository, trigger_uuid):
        access = _admin_access(request, repository)
        trigger = _trigger_of(access, trigger_uuid)
        row = TriggerRow(trigger)
        force = request.POST.get("force") == "1"
        try:
            problems = services.trigger_delete(
                trigger=trigger, principal=principal_of(request), ip=client_ip(request), force=force
            )
        except services.TriggerRemoteCleanupFailed as exc:
            context = {"repository": access.repository, "access": access, "row": row, "problems": exc.problems}
            return render(request, "ui/repository/trigger_delete.html", context, status=exc.status)
        if problems:
            messages.warning(
                request,
                f"Deleted the {row.service_label} trigger. Remove what is left at {row.service_label} by hand: "
                + "; ".join(problems),
            )
        else:
            messages.success(request, f"Deleted the {row.service_label} trigger.")
        return redirect(builds_tab_url(access.repository))


def setup_query(namespace: str, source: str = "") -> str:
    query = {"namespace": namespace}
    if source:
        query["source"] = source
    return "?" + urlencode(query)
