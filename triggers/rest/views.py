"""Quay's build trigger API: ``/repository/<r>/trigger/...``.

Everything needs the admin role on the repository (as in Quay); a trigger of another repository
answers 404. ``POST .../trigger/`` (create) is ours: Quay creates triggers from its web pages,
and an API client needs a way to get a trigger to activate.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from accounts import scopes
from accounts import selectors as account_selectors
from builds.errors import BuildError
from builds.rest.serializers import BuildDoc, BuildListDoc, build_view
from quay_site.rest.errors import ApiError, InvalidRequest, NotFound
from quay_site.rest.params import int_param
from quay_site.rest.views import ApiView
from registry.models import Repository, Role
from registry.rest.access import client_ip, flag, principal_of, repository_for
from triggers import selectors, services
from triggers.models import BuildTrigger
from triggers.rest import serializers as s

NO_CONTENT = OpenApiResponse(description="Deleted")
BUILDS_DEFAULT, BUILDS_MAX = 5, 100


def _api_error(exc: Exception) -> ApiError:
    return ApiError(str(exc), status=exc.status, error_type=exc.error_type)


def _repository(request, repository: str) -> Repository:
    repo, _ = repository_for(request, repository, need=Role.ADMIN)
    if repo.kind != Repository.Kind.IMAGE:
        # Quay: build triggers do not exist for application repositories.
        raise NotFound()
    return repo


def _trigger(request, repository: str, trigger_uuid: str) -> BuildTrigger:
    repo = _repository(request, repository)
    trigger = selectors.trigger_by_uuid(trigger_uuid=trigger_uuid, repository=repo)
    if trigger is None:
        raise NotFound()
    return trigger


def _robot(name: str | None):
    if not name:
        return None
    robot = account_selectors.user_by_name(username=name)
    if robot is None or not robot.is_robot:
        raise NotFound(f"No robot account {name}")
    return robot


def _activate(request, trigger: BuildTrigger, config: dict, pull_robot: str | None) -> BuildTrigger:
    if trigger.service != BuildTrigger.Service.CUSTOM_GIT:
        try:
            return services.trigger_activate_provider(
                trigger=trigger,
                config=config,
                pull_robot=_robot(pull_robot),
                principal=principal_of(request),
                ip=client_ip(request),
            )
        except services.TriggerError as exc:
            raise _api_error(exc) from None
    try:
        trigger, _ = services.trigger_activate_custom_git(
            trigger=trigger,
            config=config,
            pull_robot=_robot(pull_robot),
            principal=principal_of(request),
            ip=client_ip(request),
        )
    except services.TriggerError as exc:
        raise _api_error(exc) from None
    return trigger


class TriggerListView(ApiView):
    """``GET|POST /repository/<r>/trigger/``."""

    required_scopes = {"*": scopes.REPO_ADMIN}
    nicknames = {"GET": "listBuildTriggers", "POST": "createBuildTrigger"}

    @extend_schema(parameters=[s.REPOSITORY], responses={200: s.TriggerListDoc})
    def get(self, request, repository):
        """The repository's build triggers."""
        repo = _repository(request, repository)
        rows = selectors.triggers_of(repository=repo)
        return Response({"triggers": [s.trigger_view(row, can_admin=True) for row in rows]})

    @extend_schema(parameters=[s.REPOSITORY], request=s.TriggerCreateInput, responses={201: s.TriggerDoc})
    def post(self, request, repository):
        """Create a trigger; a custom git trigger given a config is activated at once."""
        repo = _repository(request, repository)
        data = s.TriggerCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if "config" in values and values["service"] != BuildTrigger.Service.CUSTOM_GIT:
            raise InvalidRequest("Only a custom-git trigger is activated at creation")
        try:
            trigger = services.trigger_create(
                repository=repo, service=values["service"], principal=principal_of(request)
            )
        except services.TriggerError as exc:
            raise _api_error(exc) from None
        if "config" in values:
            trigger = _activate(request, trigger, values["config"], values.get("pull_robot"))
        return Response(s.trigger_view(trigger, can_admin=True), status=201)


class TriggerView(ApiView):
    """``GET|PUT|DELETE /repository/<r>/trigger/<uuid>``."""

    required_scopes = {"*": scopes.REPO_ADMIN}
    nicknames = {"GET": "getBuildTrigger", "PUT": "updateBuildTrigger", "DELETE": "deleteBuildTrigger"}

    @extend_schema(parameters=[s.REPOSITORY, s.TRIGGER_UUID], responses={200: s.TriggerDoc})
    def get(self, request, repository, trigger_uuid):
        """One build trigger, with its credentials."""
        return Response(s.trigger_view(_trigger(request, repository, trigger_uuid), can_admin=True))

    @extend_schema(
        parameters=[s.REPOSITORY, s.TRIGGER_UUID], request=s.TriggerUpdateInput, responses={200: s.TriggerDoc}
    )
    def put(self, request, repository, trigger_uuid):
        """Enable or disable the trigger."""
        trigger = _trigger(request, repository, trigger_uuid)
        data = s.TriggerUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            trigger = services.trigger_update(
                trigger=trigger,
                enabled=data.validated_data["enabled"],
                principal=principal_of(request),
                ip=client_ip(request),
            )
        except services.TriggerError as exc:
            raise _api_error(exc) from None
        return Response(s.trigger_view(trigger, can_admin=True))

    @extend_schema(parameters=[s.REPOSITORY, s.TRIGGER_UUID, s.FORCE], responses={204: NO_CONTENT})
    def delete(self, request, repository, trigger_uuid):
        """Delete the trigger, its deploy key and its webhook secret (for GitHub, GitLab and
        Bitbucket also the deploy key and webhook at the provider: 502 and nothing deleted when
        that fails, unless ``force``)."""
        trigger = _trigger(request, repository, trigger_uuid)
        try:
            services.trigger_delete(
                trigger=trigger, principal=principal_of(request), ip=client_ip(request), force=flag(request, "force")
            )
        except services.TriggerError as exc:
            raise _api_error(exc) from None
        return Response(status=204)


class TriggerActivateView(ApiView):
    """``POST /repository/<r>/trigger/<uuid>/activate``."""

    required_scopes = {"POST": scopes.REPO_ADMIN}
    nicknames = {"POST": "activateBuildTrigger"}

    @extend_schema(
        parameters=[s.REPOSITORY, s.TRIGGER_UUID], request=s.TriggerActivateInput, responses={200: s.TriggerDoc}
    )
    def post(self, request, repository, trigger_uuid):
        """Activate a trigger. Custom git: its key pair and webhook URL are in the answer's config.
        GitHub, GitLab, Bitbucket (connected first): adds the deploy key and the push webhook to
        the repository ``config.build_source`` names."""
        trigger = _trigger(request, repository, trigger_uuid)
        data = s.TriggerActivateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        trigger = _activate(request, trigger, values["config"], values.get("pull_robot"))
        return Response(s.trigger_view(trigger, can_admin=True))


class TriggerStartView(ApiView):
    """``POST /repository/<r>/trigger/<uuid>/start``: Run Now."""

    required_scopes = {"POST": scopes.REPO_ADMIN}
    nicknames = {"POST": "manuallyStartBuildTrigger"}

    @extend_schema(parameters=[s.REPOSITORY, s.TRIGGER_UUID], request=s.RunParametersInput, responses={201: BuildDoc})
    def post(self, request, repository, trigger_uuid):
        """Build a commit (``commit_sha``), or a branch or tag (``refs``) from the trigger."""
        trigger = _trigger(request, repository, trigger_uuid)
        data = s.RunParametersInput(data=request.data if request.data else {})
        data.is_valid(raise_exception=True)
        values = data.validated_data
        refs = values.get("refs") or {}
        if not refs and values.get("branch_name"):
            refs = {"kind": "branch", "name": values["branch_name"]}
        try:
            build = services.trigger_run_now(
                trigger=trigger,
                principal=principal_of(request),
                commit_sha=values.get("commit_sha") or None,
                ref_kind=refs.get("kind"),
                ref_name=refs.get("name"),
            )
        except (services.TriggerError, BuildError) as exc:
            raise _api_error(exc) from None
        location = f"/api/v1/repository/{repository}/build/{build.uuid}"
        return Response(build_view(build, can_write=True), status=201, headers={"Location": location})


class TriggerBuildListView(ApiView):
    """``GET /repository/<r>/trigger/<uuid>/builds``."""

    required_scopes = {"GET": scopes.REPO_ADMIN}
    nicknames = {"GET": "listTriggerRecentBuilds"}

    @extend_schema(parameters=[s.REPOSITORY, s.TRIGGER_UUID, s.LIMIT], responses={200: BuildListDoc})
    def get(self, request, repository, trigger_uuid):
        """The builds the trigger started, newest first."""
        trigger = _trigger(request, repository, trigger_uuid)
        limit = int_param(request, "limit", BUILDS_DEFAULT, low=1, high=BUILDS_MAX)
        rows = selectors.trigger_builds(trigger=trigger, limit=limit)
        return Response({"builds": [build_view(build, can_write=True) for build in rows]})


# ---------------------------------------------------------------------------------------------
# GitHub, GitLab and Bitbucket setup


class TriggerConnectView(ApiView):
    """``POST /repository/<r>/trigger/<uuid>/connect``: start the OAuth connection (ours)."""

    required_scopes = {"POST": scopes.REPO_ADMIN}
    nicknames = {"POST": "connectBuildTrigger"}

    @extend_schema(parameters=[s.REPOSITORY, s.TRIGGER_UUID], request=s.ConnectInput, responses={200: s.ConnectDoc})
    def post(self, request, repository, trigger_uuid):
        """The provider's authorize URL to send the browser to; the provider sends it back to
        ``/oauth2/<service>/callback``, which stores the token on the trigger."""
        trigger = _trigger(request, repository, trigger_uuid)
        data = s.ConnectInput(data=request.data if isinstance(request.data, dict) else {})
        data.is_valid(raise_exception=True)
        try:
            url = services.trigger_connect_start(
                trigger=trigger, principal=principal_of(request), return_to=data.validated_data.get("return_to")
            )
        except services.TriggerError as exc:
            raise _api_error(exc) from None
        return Response({"authorize_url": url, "redirect_uri": services.oauth_redirect_uri(trigger.service)})


class TriggerNamespacesView(ApiView):
    """``GET /repository/<r>/trigger/<uuid>/namespaces``."""

    required_scopes = {"GET": scopes.REPO_ADMIN}
    nicknames = {"GET": "listTriggerBuildSourceNamespaces"}

    @extend_schema(parameters=[s.REPOSITORY, s.TRIGGER_UUID], responses={200: s.NamespaceListDoc})
    def get(self, request, repository, trigger_uuid):
        """The connected account's namespaces (itself, organizations, groups, workspaces)."""
        trigger = _trigger(request, repository, trigger_uuid)
        try:
            rows = services.trigger_source_namespaces(trigger=trigger, principal=principal_of(request))
        except services.TriggerError as exc:
            raise _api_error(exc) from None
        return Response({"namespaces": rows})


class TriggerSourcesView(ApiView):
    """``POST /repository/<r>/trigger/<uuid>/sources``."""

    required_scopes = {"POST": scopes.REPO_ADMIN}
    nicknames = {"POST": "listTriggerBuildSources"}

    @extend_schema(parameters=[s.REPOSITORY, s.TRIGGER_UUID], request=s.SourcesInput, responses={200: s.SourceListDoc})
    def post(self, request, repository, trigger_uuid):
        """The repositories of one of the connected account's namespaces."""
        trigger = _trigger(request, repository, trigger_uuid)
        data = s.SourcesInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            rows = services.trigger_sources(
                trigger=trigger, principal=principal_of(request), namespace=data.validated_data["namespace"]
            )
        except services.TriggerError as exc:
            raise _api_error(exc) from None
        return Response({"sources": rows})


class TriggerFieldValuesView(ApiView):
    """``POST|GET /repository/<r>/trigger/<uuid>/fields/<field_name>`` (Quay's is a POST with the
    config so far as the body; GET reads the trigger's own config)."""

    required_scopes = {"*": scopes.REPO_ADMIN}
    nicknames = {"POST": "listTriggerFieldValues", "GET": "getTriggerFieldValues"}

    def _values(self, request, repository, trigger_uuid, field_name, config):
        trigger = _trigger(request, repository, trigger_uuid)
        try:
            values = services.trigger_field_values(
                trigger=trigger, principal=principal_of(request), field_name=field_name, config=config
            )
        except services.TriggerError as exc:
            raise _api_error(exc) from None
        if values is None:
            raise NotFound(f"No field {field_name}")
        return Response({"values": values})

    @extend_schema(parameters=[s.REPOSITORY, s.TRIGGER_UUID, s.FIELD_NAME], responses={200: s.FieldValuesDoc})
    def get(self, request, repository, trigger_uuid, field_name):
        """Branches and tags (``refs``), branch names or tag names of the trigger's repository."""
        return self._values(request, repository, trigger_uuid, field_name, None)

    @extend_schema(
        parameters=[s.REPOSITORY, s.TRIGGER_UUID, s.FIELD_NAME],
        request=s.FieldValuesInput,
        responses={200: s.FieldValuesDoc},
    )
    def post(self, request, repository, trigger_uuid, field_name):
        """As GET, for the repository of the config in the body (``build_source``) when given."""
        body = request.data if isinstance(request.data, dict) else {}
        config = body.get("config", body) if isinstance(body.get("config", body), dict) else {}
        return self._values(request, repository, trigger_uuid, field_name, config or None)


# ---------------------------------------------------------------------------------------------
# Analyze and subdir


class TriggerAnalyzeView(ApiView):
    """``POST /repository/<r>/trigger/<uuid>/analyze``."""

    required_scopes = {"POST": scopes.REPO_ADMIN}
    nicknames = {"POST": "analyzeBuildTrigger"}

    @extend_schema(parameters=[s.REPOSITORY, s.TRIGGER_UUID], request=s.AnalyzeInput, responses={200: s.AnalyzeDoc})
    def post(self, request, repository, trigger_uuid):
        """Read the Dockerfile the config names from the git provider and say whether its base
        image needs a pull robot (and which of the namespace's robots can already pull it)."""
        trigger = _trigger(request, repository, trigger_uuid)
        data = s.AnalyzeInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            answer = services.trigger_analyze(
                trigger=trigger, principal=principal_of(request), config=data.validated_data["config"]
            )
        except services.TriggerError as exc:
            raise _api_error(exc) from None
        return Response(answer)


class TriggerSubdirView(ApiView):
    """``POST|GET /repository/<r>/trigger/<uuid>/subdir`` (Quay's is a POST with the config so far
    as the body; GET lists the trigger's own repository)."""

    required_scopes = {"*": scopes.REPO_ADMIN}
    nicknames = {"POST": "listBuildTriggerSubdirs", "GET": "getBuildTriggerSubdirs"}

    def _listing(self, request, repository, trigger_uuid, config):
        trigger = _trigger(request, repository, trigger_uuid)
        try:
            answer = services.trigger_dockerfile_paths(trigger=trigger, principal=principal_of(request), config=config)
        except services.TriggerError as exc:
            raise _api_error(exc) from None
        return Response(answer)

    @extend_schema(parameters=[s.REPOSITORY, s.TRIGGER_UUID], responses={200: s.SubdirDoc})
    def get(self, request, repository, trigger_uuid):
        """The Dockerfiles on the default branch of the trigger's repository."""
        return self._listing(request, repository, trigger_uuid, None)

    @extend_schema(parameters=[s.REPOSITORY, s.TRIGGER_UUID], request=s.SubdirInput, responses={200: s.SubdirDoc})
    def post(self, request, repository, trigger_uuid):
        """The Dockerfiles (and possible build contexts) of the config's ``build_source``."""
        body = request.data if isinstance(request.data, dict) else {}
        config = body.get("config", body)
        if not isinstance(config, dict):
            raise InvalidRequest("config must be an object")
        return self._listing(request, repository, trigger_uuid, config or None)
