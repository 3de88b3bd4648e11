"""Repositories: create, list, read, describe, delete, change visibility; stars."""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response

from accounts import scopes
from quay_site.rest.errors import InvalidRequest
from quay_site.rest.views import ApiView
from registry import errors as registry_errors
from registry import names, selectors, services
from registry.models import Repository, Role
from registry.permissions import can_create_in
from registry.rest import serializers as s
from registry.rest.access import (
    ScopeOrAnonymousPermission,
    client_ip,
    flag,
    forbidden,
    hidden,
    is_authenticated,
    page_token_dump,
    page_token_load,
    principal_of,
    repository_for,
    role_on,
)

REPOS_PER_PAGE = 100
MAX_TAGS = 500
# Quay's windows: popularity counts the last week's actions, stats cover about three months.
POPULARITY_DAYS = 7
STATS_DAYS = 91


def _repository_path_param():
    return OpenApiParameter(
        "repository", OpenApiTypes.STR, OpenApiParameter.PATH, description="The full path: namespace/name"
    )


def _flag_param(name: str, description: str):
    return OpenApiParameter(name, OpenApiTypes.BOOL, OpenApiParameter.QUERY, description=description)


NEXT_PAGE = OpenApiParameter(
    "next_page", OpenApiTypes.STR, OpenApiParameter.QUERY, description="The page token of the next page"
)


def _position_id(position: dict | None) -> int | None:
    if position is None:
        return None
    after = position.get("id")
    if not isinstance(after, int):
        raise InvalidRequest("Invalid next_page token")
    return after


class RepositoryListView(ApiView):
    """Create repositories and list the ones the caller can see."""

    permission_classes = [ScopeOrAnonymousPermission]
    required_scopes = {"POST": scopes.REPO_CREATE, "GET": scopes.REPO_READ}
    anonymous_methods = {"GET"}
    nicknames = {"POST": "createRepo", "GET": "listRepos"}

    @extend_schema(request=s.RepositoryCreateInput, responses={201: s.RepositoryCreatedDoc})
    def post(self, request):
        """Create a repository in the caller's namespace or one where they may create."""
        data = s.RepositoryCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        namespace = selectors.namespace_by_name(values.get("namespace") or request.user.username)
        principal = principal_of(request)
        if namespace is None or not can_create_in(principal, namespace):
            raise forbidden()
        name = values["repository"]
        try:
            names.split_repository_name(f"{namespace.name}/{name}")
        except registry_errors.RegistryError:
            raise InvalidRequest("Invalid repository name") from None
        if selectors.repository_by_name(f"{namespace.name}/{name}") is not None:
            raise InvalidRequest("Repository already exists")
        kind = values["repo_kind"] or Repository.Kind.IMAGE
        try:
            services.repository_create(
                namespace=namespace,
                name=name,
                principal=principal,
                visibility=values["visibility"],
                kind=kind,
                description=values["description"],
                ip=client_ip(request),
            )
        except IntegrityError:
            raise InvalidRequest("Repository already exists") from None
        return Response({"namespace": namespace.name, "name": name, "kind": kind}, status=201)

    @extend_schema(
        parameters=[
            OpenApiParameter("namespace", OpenApiTypes.STR, description="Only repositories of this namespace"),
            _flag_param("starred", "Only repositories the caller starred"),
            _flag_param("public", "Add the public repositories the caller can see"),
            _flag_param("last_modified", "Include when each repository's newest tag was pushed"),
            _flag_param("popularity", "Include each repository's number of actions in the last week"),
            OpenApiParameter("repo_kind", OpenApiTypes.STR, enum=s.KINDS, description="image (default) or application"),
            NEXT_PAGE,
        ],
        responses={200: s.RepositoryListDoc},
    )
    def get(self, request):
        """List repositories by namespace, starred or public (one of them is required)."""
        namespace = request.query_params.get("namespace") or None
        starred, public = flag(request, "starred"), flag(request, "public")
        if not (namespace or starred or public):
            raise InvalidRequest("namespace, starred or public are required for this API call")
        user = request.user if is_authenticated(request) else None
        if starred and user is None:
            raise InvalidRequest("Listing starred repositories requires a signed-in user")
        kind = request.query_params.get("repo_kind") or Repository.Kind.IMAGE
        if kind not in s.KINDS:
            raise InvalidRequest(f"repo_kind must be one of {', '.join(s.KINDS)}")
        more = False
        if starred:
            rows = list(selectors.repositories_starred(user=user, kind=kind))
        elif namespace:
            # As in Quay, a namespace's listing is not paged.
            query = selectors.repositories_visible(user=user, include_public=public, namespace=namespace, kind=kind)
            rows = list(query)
        else:
            query = selectors.repositories_visible(user=user, include_public=public, kind=kind)
            after = _position_id(page_token_load(request, "repositories"))
            rows, more = selectors.page_after_id(query, after_id=after, limit=REPOS_PER_PAGE)
        ids = [row.pk for row in rows]
        starred_ids = selectors.repository_starred_ids(user=user, repository_ids=ids) if user else None
        last_modified = (
            selectors.repository_last_tag_starts(repository_ids=ids) if flag(request, "last_modified") else None
        )
        popularity = (
            selectors.repository_action_counts(
                repository_ids=ids, since=timezone.now() - timedelta(days=POPULARITY_DAYS)
            )
            if flag(request, "popularity")
            else None
        )
        result = {
            "repositories": [
                s.repository_summary(
                    row,
                    starred=(row.pk in starred_ids) if starred_ids is not None else None,
                    last_modified=last_modified.get(row.pk) if last_modified is not None else False,
                    popularity=popularity.get(row.pk) if popularity is not None else False,
                )
                for row in rows
            ]
        }
        if more:
            result["next_page"] = page_token_dump("repositories", {"id": rows[-1].pk})
        return Response(result)


class RepositoryView(ApiView):
    """One repository: read, change its description, delete."""

    permission_classes = [ScopeOrAnonymousPermission]
    required_scopes = {"GET": scopes.REPO_READ, "PUT": scopes.REPO_WRITE, "DELETE": scopes.REPO_ADMIN}
    anonymous_methods = {"GET"}
    nicknames = {"GET": "getRepo", "PUT": "updateRepo", "DELETE": "deleteRepository"}

    @extend_schema(
        parameters=[
            _repository_path_param(),
            _flag_param("includeTags", "Include the repository's tags (default true)"),
            _flag_param("includeStats", "Include daily action counts of the last three months"),
        ],
        responses={200: s.RepositoryDetailDoc},
    )
    def get(self, request, repository):
        """Fetch a repository (public ones anonymously)."""
        repo, role = repository_for(request, repository, need=Role.READ)
        tags = (
            selectors.repository_tags_for_view(repository=repo, limit=MAX_TAGS)
            if flag(request, "includeTags", default=True)
            else None
        )
        stats = None
        if flag(request, "includeStats"):
            today = timezone.now().date()
            first = today - timedelta(days=STATS_DAYS)
            counts = selectors.repository_daily_action_counts(
                repository=repo, since=timezone.now() - timedelta(days=STATS_DAYS + 1)
            )
            stats = [
                {"date": (first + timedelta(days=n)).isoformat(), "count": counts.get(first + timedelta(days=n), 0)}
                for n in range(STATS_DAYS + 1)
            ]
        starred = is_authenticated(request) and selectors.repository_is_starred(user=request.user, repository=repo)
        return Response(s.repository_detail(repo, role=role, starred=starred, tags=tags, stats=stats))

    @extend_schema(
        parameters=[_repository_path_param()], request=s.RepositoryUpdateInput, responses={200: s.SuccessDoc}
    )
    def put(self, request, repository):
        """Change the description of a repository."""
        repo, _ = repository_for(request, repository, need=Role.WRITE)
        data = s.RepositoryUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.repository_set_description(
            repository=repo,
            description=data.validated_data["description"],
            principal=principal_of(request),
            ip=client_ip(request),
        )
        return Response({"success": True})

    @extend_schema(parameters=[_repository_path_param()], responses={204: OpenApiResponse(description="Deleted")})
    def delete(self, request, repository):
        """Delete a repository with its tags, manifests and permissions."""
        repo, _ = repository_for(request, repository, need=Role.ADMIN)
        services.repository_delete(repository=repo, principal=principal_of(request), ip=client_ip(request))
        return Response(status=204)


class RepositoryVisibilityView(ApiView):
    """Make a repository public or private."""

    required_scopes = {"POST": scopes.REPO_ADMIN}
    nicknames = {"POST": "changeRepoVisibility"}

    @extend_schema(parameters=[_repository_path_param()], request=s.VisibilityInput, responses={200: s.SuccessDoc})
    def post(self, request, repository):
        """Change the visibility of a repository."""
        repo, _ = repository_for(request, repository, need=Role.ADMIN)
        data = s.VisibilityInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.repository_set_visibility(
            repository=repo,
            visibility=data.validated_data["visibility"],
            principal=principal_of(request),
            ip=client_ip(request),
        )
        return Response({"success": True})


class StarredRepositoryListView(ApiView):
    """The caller's starred repositories."""

    required_scopes = {"GET": scopes.USER_ADMIN, "POST": scopes.REPO_READ}
    nicknames = {"GET": "listStarredRepos", "POST": "createStar"}

    @extend_schema(parameters=[NEXT_PAGE], responses={200: s.RepositoryListDoc})
    def get(self, request):
        """List the repositories the caller starred."""
        after = _position_id(page_token_load(request, "starred"))
        rows, more = selectors.page_after_id(
            selectors.repositories_starred(user=request.user), after_id=after, limit=REPOS_PER_PAGE
        )
        result = {
            "repositories": [
                {
                    "namespace": row.namespace.name,
                    "name": row.name,
                    "description": row.description,
                    "is_public": row.is_public,
                    "kind": row.kind,
                }
                for row in rows
            ]
        }
        if more:
            result["next_page"] = page_token_dump("starred", {"id": rows[-1].pk})
        return Response(result)

    @extend_schema(request=s.StarInput, responses={201: s.StarredDoc})
    def post(self, request):
        """Star a repository the caller can see."""
        data = s.StarInput(data=request.data)
        data.is_valid(raise_exception=True)
        namespace, name = data.validated_data["namespace"], data.validated_data["repository"]
        repo, _ = repository_for(request, f"{namespace}/{name}", need=Role.READ)
        services.star_add(user=request.user, repository=repo)
        return Response({"namespace": namespace, "repository": name}, status=201)


class StarredRepositoryView(ApiView):
    """Remove a star."""

    required_scopes = {"DELETE": scopes.USER_ADMIN}
    nicknames = {"DELETE": "deleteStar"}

    @extend_schema(parameters=[_repository_path_param()], responses={204: OpenApiResponse(description="Deleted")})
    def delete(self, request, repository):
        """Remove the caller's star from a repository."""
        repo = selectors.repository_by_name(repository) if _valid_name(repository) else None
        # A star on a repository the caller can no longer see may still be removed.
        if repo is None or not (
            role_on(request, repo) or selectors.repository_is_starred(user=request.user, repository=repo)
        ):
            raise hidden(request)
        services.star_remove(user=request.user, repository=repo)
        return Response(status=204)


def _valid_name(full_name: str) -> bool:
    try:
        names.split_repository_name(full_name)
    except registry_errors.RegistryError:
        return False
    return True
