"""Reads for the web UI's pages: one bounded query per list, whatever the number of tags."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from accounts.models import Namespace, Team, User
from registry import selectors as registry_selectors
from registry.models import Repository, RepositoryBlob, Tag, UsageLog
from ui.models import SiteConfiguration

REPOSITORIES_PER_PAGE = 25
RECENT_TAGS = 10


def site_configuration() -> SiteConfiguration:
    config = SiteConfiguration.objects.filter(pk=SiteConfiguration.SINGLETON_PK).first()
    return config if config is not None else SiteConfiguration(pk=SiteConfiguration.SINGLETON_PK)


def user_creation_allowed() -> bool:
    """Sign-up is open when the installation allows it and no superuser has switched it off."""
    return settings.FEATURE_USER_CREATION and site_configuration().user_creation_enabled


# --- Repositories -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepositoryRow:
    repository: Repository
    size: int
    last_modified: datetime
    starred: bool


def repositories_for_listing(
    *, user: User | None, superuser: bool, namespace: str = "", search: str = "", starred: bool = False
) -> QuerySet[Repository]:
    """What the repository list shows: everything to a superuser; otherwise the repositories the
    user holds a role on plus every public one (only public ones to an anonymous visitor)."""
    if superuser:
        query = Repository.objects.select_related("namespace")
    else:
        query = registry_selectors.repositories_visible(user=user, include_public=True)
    if namespace:
        query = query.filter(namespace__name=namespace)
    if search:
        ns_part, slash, name_part = search.partition("/")
        if slash:
            query = query.filter(namespace__name__icontains=ns_part, name__icontains=name_part)
        else:
            query = query.filter(
                Q(name__icontains=search) | Q(namespace__name__icontains=search) | Q(description__icontains=search)
            )
    if starred and user is not None:
        query = query.filter(stars__user=user)
    return query.order_by("namespace__name", "name")


def repository_sizes(*, repository_ids: list[int]) -> dict[int, int]:
    """Bytes of the distinct blobs each repository links (layers and configs it holds)."""
    rows = (
        RepositoryBlob.objects.filter(repository_id__in=repository_ids)
        .values("repository_id")
        .annotate(total=Sum("blob__size"))
    )
    return {row["repository_id"]: row["total"] or 0 for row in rows}


def repository_rows(*, page_rows: list[Repository], user: User | None) -> list[RepositoryRow]:
    """Size, last change and star of one page of repositories, in three grouped queries."""
    ids = [row.pk for row in page_rows]
    sizes = repository_sizes(repository_ids=ids)
    pushed = registry_selectors.repository_last_tag_starts(repository_ids=ids)
    starred = registry_selectors.repository_starred_ids(user=user, repository_ids=ids) if user else set()
    return [
        RepositoryRow(
            repository=row,
            size=sizes.get(row.pk, 0),
            last_modified=max(filter(None, (row.last_modified, pushed.get(row.pk)))),
            starred=row.pk in starred,
        )
        for row in page_rows
    ]


def repository_page(query: QuerySet[Repository], *, number) -> Page:
    return Paginator(query, REPOSITORIES_PER_PAGE).get_page(number)


@dataclass(frozen=True)
class RepositorySummary:
    tag_count: int
    size: int
    last_modified: datetime
    pulls_week: int
    pulls_month: int
    pushes_month: int
    recent_tags: list[Tag]


def repository_summary(*, repository: Repository) -> RepositorySummary:
    """What the Information tab shows; the recent tags are the newest few, never the whole set."""
    now = timezone.now()
    activity = UsageLog.objects.filter(
        repository=repository,
        created__gte=now - timedelta(days=30),
        kind__in=(UsageLog.Kind.PULL_REPO, UsageLog.Kind.PUSH_REPO),
    ).aggregate(
        pulls_month=Count("pk", filter=Q(kind=UsageLog.Kind.PULL_REPO)),
        pulls_week=Count("pk", filter=Q(kind=UsageLog.Kind.PULL_REPO, created__gte=now - timedelta(days=7))),
        pushes_month=Count("pk", filter=Q(kind=UsageLog.Kind.PUSH_REPO)),
    )
    recent = registry_selectors.repository_tags_for_view(repository=repository, limit=RECENT_TAGS)
    pushed = registry_selectors.repository_last_tag_starts(repository_ids=[repository.pk]).get(repository.pk)
    return RepositorySummary(
        tag_count=registry_selectors.alive_tags(repository).count(),
        size=repository_sizes(repository_ids=[repository.pk]).get(repository.pk, 0),
        last_modified=max(filter(None, (repository.last_modified, pushed))),
        pulls_week=activity["pulls_week"],
        pulls_month=activity["pulls_month"],
        pushes_month=activity["pushes_month"],
        recent_tags=recent,
    )


def repository_robot_candidates(*, repository: Repository) -> list[str]:
    """Robot names of the repository's namespace, offered when granting a permission."""
    return list(
        User.objects.filter(robot__namespace=repository.namespace)
        .order_by("username")
        .values_list("username", flat=True)
    )


def repository_team_candidates(*, repository: Repository) -> list[str]:
    if not repository.namespace.is_organization:
        return []
    return list(Team.objects.filter(organization=repository.namespace).order_by("name").values_list("name", flat=True))


# --- Namespaces ---------------------------------------------------------------------------------


def organizations_of(*, user: User) -> list[Namespace]:
    """Organizations where the user is in a team, by name."""
    return list(
        Namespace.objects.filter(kind=Namespace.Kind.ORGANIZATION, teams__members=user).distinct().order_by("name")
    )


def namespaces_for_creation(*, user: User) -> list[Namespace]:
    """Where the user may create repositories: their own namespace, then organizations where a
    team of theirs has the admin or creator role."""
    own = list(Namespace.objects.filter(user=user))
    orgs = list(
        Namespace.objects.filter(
            kind=Namespace.Kind.ORGANIZATION,
            teams__members=user,
            teams__role__in=(Team.Role.ADMIN, Team.Role.CREATOR),
        )
        .distinct()
        .order_by("name")
    )
    return own + orgs


def namespaces_for_filter(*, user: User) -> list[str]:
    """Namespace names offered by the repository list's filter: the user's, then their organizations."""
    return [user.username, *(org.name for org in organizations_of(user=user))]


def organization_repositories(*, organization: Namespace, user: User | None, superuser: bool) -> list[Repository]:
    return list(repositories_for_listing(user=user, superuser=superuser, namespace=organization.name))
