"""Quay's OAuth scopes and what each implies."""

REPO_READ = "repo:read"
REPO_WRITE = "repo:write"
REPO_ADMIN = "repo:admin"
REPO_CREATE = "repo:create"
USER_READ = "user:read"
USER_ADMIN = "user:admin"
ORG_ADMIN = "org:admin"
SUPERUSER = "super:user"

DESCRIPTIONS = {
    REPO_READ: "View all visible repositories",
    REPO_WRITE: "Read/Write to any accessible repositories",
    REPO_ADMIN: "Administer repositories",
    REPO_CREATE: "Create repositories",
    USER_READ: "Read user information",
    USER_ADMIN: "Administer user",
    ORG_ADMIN: "Administer organization",
    SUPERUSER: "Super user",
}
ALL = frozenset(DESCRIPTIONS)

# A broader scope grants the narrower ones, as in Quay.
IMPLIES = {
    REPO_ADMIN: {REPO_WRITE, REPO_READ, REPO_CREATE},
    REPO_WRITE: {REPO_READ},
    USER_ADMIN: {USER_READ},
    ORG_ADMIN: set(),
    SUPERUSER: set(),
}


def expand(scopes) -> frozenset[str]:
    result = set(scopes)
    for scope in scopes:
        result |= IMPLIES.get(scope, set())
    return frozenset(result)


def parse(text: str) -> frozenset[str]:
    """Space- or comma-separated scope names; unknown names raise ValueError."""
    names = {part for part in text.replace(",", " ").split() if part}
    unknown = names - ALL
    if unknown:
        raise ValueError(f"Unknown scopes: {', '.join(sorted(unknown))}")
    return frozenset(names)
