"""Usage logs of a repository, of the caller's namespace and of an organization.

Quay's time window: ``starttime``/``endtime`` are UTC days as ``MM/DD/YYYY``; the window runs
from the start day (default: a day ago) to the end of the end day (default: today), newest
entries first, 20 per page with an opaque ``next_page`` token.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from accounts import scopes
from accounts.rest.access import org_access
from quay_site.rest.errors import InvalidRequest
from quay_site.rest.views import ApiView
from registry import selectors
from registry.models import Role
from registry.rest import serializers as s
from registry.rest.access import page_token_dump, page_token_load, repository_for

LOGS_PER_PAGE = 20
DAY_FORMAT = "%m/%d/%Y"

TIME_PARAMS = [
    OpenApiParameter("starttime", OpenApiTypes.STR, description="Earliest day of the logs, MM/DD/YYYY in UTC"),
    OpenApiParameter("endtime", OpenApiTypes.STR, description="Latest day of the logs, MM/DD/YYYY in UTC"),
]
PERFORMER = OpenApiParameter("performer", OpenApiTypes.STR, description="Only entries by this username")
NEXT_PAGE = OpenApiParameter("next_page", OpenApiTypes.STR, description="The page token of the next page")
REPOSITORY = OpenApiParameter(
    "repository", OpenApiTypes.STR, OpenApiParameter.PATH, description="The full path: namespace/name"
)
ORGNAME = OpenApiParameter("orgname", OpenApiTypes.STR, OpenApiParameter.PATH, description="The organization")


def _day(request, name: str) -> datetime | None:
    value = (request.query_params.get(name) or "").strip()
    if not value:
        return None
    try:
        return datetime.strptime(value, DAY_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise InvalidRequest(f"Invalid {name} {value!r}: expected MM/DD/YYYY") from None


def time_window(request) -> tuple[datetime, datetime]:
    now = timezone.now()
    start = _day(request, "starttime") or now - timedelta(days=1)
    end = (_day(request, "endtime") or now) + timedelta(days=1)
    if end < start:
        raise InvalidRequest("endtime is before starttime")
    return start, end


def _cursor(request) -> selectors.LogCursor | None:
    position = page_token_load(request, "logs")
    if position is None:
        return None
    try:
        return selectors.LogCursor(created=datetime.fromisoformat(position["t"]), pk=int(position["id"]))
    except (KeyError, TypeError, ValueError):
        raise InvalidRequest("Invalid next_page token") from None


def logs_response(request, **scope) -> Response:
    start, end = time_window(request)
    entries, following = selectors.usage_logs_page(
        start=start, end=end, limit=LOGS_PER_PAGE, after=_cursor(request), **scope
    )
    result = {
        "start_time": s.rfc2822(start),
        "end_time": s.rfc2822(end),
        "logs": [s.log_view(entry) for entry in entries],
    }
    if following is not None:
        result["next_page"] = page_token_dump("logs", {"t": following.created.isoformat(), "id": following.pk})
    return Response(result)


def aggregated_response(request, **scope) -> Response:
    start, end = time_window(request)
    rows = selectors.usage_log_daily_counts(start=start, end=end, **scope)
    return Response(
        {
            "aggregated": [
                {
                    "kind": kind,
                    "count": count,
                    "datetime": s.rfc2822(datetime(day.year, day.month, day.day, tzinfo=UTC)),
                }
                for kind, day, count in rows
            ]
        }
    )


def _performer(request) -> str | None:
    return request.query_params.get("performer") or None


def _own_namespace(request):
    return getattr(request.user, "namespace", None)


class RepositoryLogsView(ApiView):
    """Usage log of a repository (its admins)."""

    required_scopes = {"GET": scopes.REPO_ADMIN}
    nicknames = {"GET": "listRepoLogs"}

    @extend_schema(parameters=[REPOSITORY, *TIME_PARAMS, NEXT_PAGE], responses={200: s.LogListDoc})
    def get(self, request, repository):
        """List the usage log entries of a repository."""
        repo, _ = repository_for(request, repository, need=Role.ADMIN)
        return logs_response(request, repository=repo)


class UserLogsView(ApiView):
    """Usage log of the caller's own namespace."""

    required_scopes = {"GET": scopes.USER_ADMIN}
    nicknames = {"GET": "listUserLogs"}

    @extend_schema(parameters=[*TIME_PARAMS, PERFORMER, NEXT_PAGE], responses={200: s.LogListDoc})
    def get(self, request):
        """List the usage log entries of the caller's namespace."""
        namespace = _own_namespace(request)
        if namespace is None:
            return Response({"start_time": None, "end_time": None, "logs": []})
        return logs_response(request, namespace=namespace, performer=_performer(request))


class OrganizationLogsView(ApiView):
    """Usage log of an organization (its admins)."""

    required_scopes = {"GET": scopes.ORG_ADMIN}
    nicknames = {"GET": "listOrgLogs"}

    @extend_schema(parameters=[ORGNAME, *TIME_PARAMS, PERFORMER, NEXT_PAGE], responses={200: s.LogListDoc})
    def get(self, request, orgname):
        """List the usage log entries of an organization."""
        org = org_access(request, orgname, need="admin").organization
        return logs_response(request, namespace=org, performer=_performer(request))


class RepositoryAggregateLogsView(ApiView):
    """Daily counts per kind of a repository's usage log."""

    required_scopes = {"GET": scopes.REPO_ADMIN}
    nicknames = {"GET": "getAggregateRepoLogs"}

    @extend_schema(parameters=[REPOSITORY, *TIME_PARAMS], responses={200: s.AggregatedLogListDoc})
    def get(self, request, repository):
        """Count a repository's usage log entries per kind and day."""
        repo, _ = repository_for(request, repository, need=Role.ADMIN)
        return aggregated_response(request, repository=repo)


class UserAggregateLogsView(ApiView):
    """Daily counts per kind of the caller's namespace's usage log."""

    required_scopes = {"GET": scopes.USER_ADMIN}
    nicknames = {"GET": "getAggregateUserLogs"}

    @extend_schema(parameters=[*TIME_PARAMS, PERFORMER], responses={200: s.AggregatedLogListDoc})
    def get(self, request):
        """Count the caller's namespace's usage log entries per kind and day."""
        namespace = _own_namespace(request)
        if namespace is None:
            return Response({"aggregated": []})
        return aggregated_response(request, namespace=namespace, performer=_performer(request))


class OrganizationAggregateLogsView(ApiView):
    """Daily counts per kind of an organization's usage log."""

    required_scopes = {"GET": scopes.ORG_ADMIN}
    nicknames = {"GET": "getAggregateOrgLogs"}

    @extend_schema(parameters=[ORGNAME, *TIME_PARAMS, PERFORMER], responses={200: s.AggregatedLogListDoc})
    def get(self, request, orgname):
        """Count an organization's usage log entries per kind and day."""
        org = org_access(request, orgname, need="admin").organization
        return aggregated_response(request, namespace=org, performer=_performer(request))
