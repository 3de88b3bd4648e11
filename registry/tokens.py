"""Docker token authentication: credentials in, a signed JWT with granted scopes out.

The signing key is an RSA key (RS256: verification, done on every registry request, is far
cheaper than ECDSA's). It is read from REGISTRY_TOKEN_KEY_FILE, generated there on first
start when missing. Verification accepts only our own key by ``kid``, never a key carried in
the token, and checks every claim.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.db import connection

from accounts import scopes as quay_scopes
from accounts import selectors as account_selectors
from accounts import services as account_services
from accounts.crypto import token_hash_matches
from accounts.models import Namespace, User
from registry import names
from registry.models import Repository, RepositoryAccessToken, Role
from registry.permissions import ANONYMOUS, Principal, can_create_in, repository_role
from registry.rows import RowLoader

ACTIONS_FOR_ROLE = {
    None: set(),
    Role.READ: {"pull"},
    Role.WRITE: {"pull", "push", "delete"},
    Role.ADMIN: {"pull", "push", "delete", "*"},
}


@dataclass(frozen=True)
class SigningKey:
    private_key: rsa.RSAPrivateKey
    public_key: rsa.RSAPublicKey
    kid: str


def _libtrust_kid(public_key) -> str:
    """The key id format Docker's libtrust uses: base32 of the SPKI hash, in groups of four."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.sha256(der).digest()[:30]
    b32 = base64.b32encode(digest).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, 48, 4))


def _load_or_create_key(path: str) -> rsa.RSAPrivateKey:
    if not os.path.exists(path):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        tmp = f"{path}.tmp{os.getpid()}"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            f.write(pem)
        try:
            # Several workers may start at once: the first link wins, the rest read its key.
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


@lru_cache(maxsize=1)
def signing_key() -> SigningKey:
    private_key = _load_or_create_key(settings.REGISTRY_TOKEN_KEY_FILE)
    public_key = private_key.public_key()
    return SigningKey(private_key, public_key, _libtrust_kid(public_key))


# ---------------------------------------------------------------------------------------------
# Credentials


class BadCredentials(Exception):
    pass


@dataclass(frozen=True)
class OAuthPrincipal(Principal):
    """A user signed in with ``$oauthtoken`` and a REST API token: the token's repo scopes cap
    what a registry token may grant, whatever the user could do with a password."""

    oauth_scopes: frozenset[str] = frozenset()

    def allowed_actions(self) -> set[str]:
        actions = set()
        if quay_scopes.REPO_READ in self.oauth_scopes:
            actions.add("pull")
        if quay_scopes.REPO_WRITE in self.oauth_scopes:
            actions |= {"push", "delete"}
        if quay_scopes.REPO_ADMIN in self.oauth_scopes:
            actions.add("*")
        return actions

    @property
    def may_create(self) -> bool:
        return {quay_scopes.REPO_CREATE, quay_scopes.REPO_WRITE} <= self.oauth_scopes


def principal_from_basic(username: str, password: str) -> Principal:
    """Resolve HTTP Basic credentials to a principal, or raise BadCredentials.

    Accepted: ``$token`` + repository access token, ``$app`` + app-specific token,
    ``$oauthtoken`` + REST API token, a robot ``ns+name`` + its token, a user + password, or a
    user + one of their app tokens.
    """
    if not username or not password:
        raise BadCredentials()
    if username == "$oauthtoken":
        oauth_token = account_selectors.oauth_token_by_value(token=password)
        if oauth_token is None:
            raise BadCredentials()
        return OAuthPrincipal(
            kind="user", user=oauth_token.user, oauth_scopes=quay_scopes.expand(oauth_token.scope_set)
        )
    if username == "$token":
        row = (
            RepositoryAccessToken.objects.filter(code_prefix=password[: RepositoryAccessToken.PREFIX_LENGTH])
            .only("id", "repository_id", "role", "code_hash", "expiration")
            .first()
        )
        if row is None or not token_hash_matches(password, row.code_hash):
            raise BadCredentials()
        if row.expiration is not None and row.expiration.timestamp() <= time.time():
            raise BadCredentials()
        return Principal(
            kind="token",
            access_token_id=row.pk,
            access_token_repository_id=row.repository_id,
            access_token_role=row.role,
        )
    if username == "$app" or (len(password) == account_services.APP_TOKEN_LENGTH and "+" not in username):
        app_token = account_selectors.app_token_by_value(token=password)
        if app_token is not None and (username == "$app" or app_token.user.username == username):
            account_services.app_token_touch(app_token=app_token)
            return Principal(kind="user", user=app_token.user)
        if username == "$app":
            raise BadCredentials()
    if "+" in username:
        robot = account_selectors.robot_by_token(username=username, token=password)
        if robot is None:
            raise BadCredentials()
        return Principal(kind="robot", user=robot)
    user = account_selectors.user_by_password(username=username, password=password)
    if user is None:
        raise BadCredentials()
    return Principal(kind="user", user=user)


# ---------------------------------------------------------------------------------------------
# Scopes


@dataclass(frozen=True)
class Scope:
    type: str
    name: str
    actions: tuple[str, ...]


def parse_scope(scope: str) -> Scope | None:
    """``type[(class)]:name:actions``; the name may itself contain ``:`` (a registry port)."""
    head, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not name:
        return None
    type_ = head.split("(", 1)[0]
    return Scope(type=type_, name=name, actions=tuple(a for a in actions.split(",") if a))


def granted_actions(principal: Principal, scope: Scope) -> list[str]:
    """The intersection of the asked actions and what the principal may do."""
    asked = set(scope.actions)
    if isinstance(principal, OAuthPrincipal):
        asked &= principal.allowed_actions()
    if scope.type == "registry" and scope.name == "catalog":
        if isinstance(principal, OAuthPrincipal) and quay_scopes.REPO_READ not in principal.oauth_scopes:
            return []
        return ["*"] if "*" in scope.actions else []
    if scope.type != "repository":
        return []
    try:
        ns_name, repo_name = names.split_repository_name(scope.name)
    except Exception:
        return []
    repository = Repository.objects.select_related("namespace").filter(namespace__name=ns_name, name=repo_name).first()
    if repository is None:
        # Only a push may name a missing repository: it creates it when the caller may.
        if "push" in asked and (not isinstance(principal, OAuthPrincipal) or principal.may_create):
            namespace = Namespace.objects.filter(name=ns_name).first()
            if namespace is not None and can_create_in(principal, namespace):
                return sorted(asked & {"pull", "push", "delete", "*"})
        return []
    allowed = set(ACTIONS_FOR_ROLE[repository_role(principal, repository)])
    if repository.state == Repository.State.READ_ONLY:
        allowed -= {"push", "delete", "*"}
    return sorted(asked & allowed)


# ---------------------------------------------------------------------------------------------
# Tokens


def issue_token(principal: Principal, scopes: list[str], service: str) -> dict:
    """Sign a token for the granted part of ``scopes``; the answer body of the token endpoint."""
    access = []
    for raw in scopes:
        scope = parse_scope(raw)
        if scope is None:
            continue
        actions = granted_actions(principal, scope)
        access.append({"type": scope.type, "name": scope.name, "actions": actions})
    now = int(time.time())
    key = signing_key()
    context = {"kind": principal.kind}
    if principal.user is not None:
        context["user_id"] = principal.user.pk
    if principal.access_token_id is not None:
        context["token_id"] = principal.access_token_id
        context["repository_id"] = principal.access_token_repository_id
    claims = {
        "iss": settings.REGISTRY_TOKEN_ISSUER,
        "sub": principal.name,
        "aud": service,
        "exp": now + settings.REGISTRY_TOKEN_SECONDS,
        "nbf": now - 5,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "access": access,
        "context": context,
    }
    token = jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})
    issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return {"token": token, "access_token": token, "expires_in": settings.REGISTRY_TOKEN_SECONDS, "issued_at": issued}


@dataclass(frozen=True)
class VerifiedToken:
    subject: str
    context: dict
    access: dict  # (type, name) -> frozenset(actions)
    expires: int

    def allows(self, type_: str, name: str, action: str) -> bool:
        actions = self.access.get((type_, name), frozenset())
        return action in actions or "*" in actions

    @property
    def principal_key(self) -> str:
        if self.context.get("kind") == "token":
            return f"token:{self.context.get('token_id')}"
        if self.context.get("user_id") is not None:
            return f"user:{self.context['user_id']}"
        return "anon"

    @property
    def user_id(self) -> int | None:
        return self.context.get("user_id")


class InvalidToken(Exception):
    pass


# Verified tokens are cached per process: a client sends the same token on every request of a
# pull, and an RSA verification plus JSON decoding costs more than the rest of a manifest GET.
_verified_cache: dict[tuple[str, str], VerifiedToken] = {}
_cache_lock = threading.Lock()
_CACHE_MAX = 4096


def verify_token(token: str, service: str) -> VerifiedToken:
    cache_key = (token, service)
    cached = _verified_cache.get(cache_key)
    now = time.time()
    if cached is not None:
        if cached.expires > now:
            return cached
        with _cache_lock:
            _verified_cache.pop(cache_key, None)
        raise InvalidToken("expired")
    key = signing_key()
    try:
        header = jwt.get_unverified_header(token)
        if header.get("kid") != key.kid or header.get("alg") != "RS256":
            raise InvalidToken("unknown key")
        claims = jwt.decode(
            token,
            key.public_key,
            algorithms=["RS256"],
            audience=service,
            issuer=settings.REGISTRY_TOKEN_ISSUER,
            options={"require": ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"]},
            leeway=5,
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None
    access = {}
    for entry in claims.get("access") or []:
        if isinstance(entry, dict):
            access[(entry.get("type"), entry.get("name"))] = frozenset(entry.get("actions") or [])
    verified = VerifiedToken(
        subject=claims["sub"], context=claims.get("context") or {}, access=access, expires=int(claims["exp"])
    )
    with _cache_lock:
        if len(_verified_cache) >= _CACHE_MAX:
            _verified_cache.clear()
        _verified_cache[cache_key] = verified
    return verified


def access_token_live(verified: VerifiedToken) -> bool:
    """False when the token was issued to a repository access token since deleted or expired;
    True for every other kind of caller (their rights are re-checked where writes need it)."""
    if verified.context.get("kind") != "token":
        return True
    row = RepositoryAccessToken.objects.filter(pk=verified.context.get("token_id")).only("expiration").first()
    return row is not None and (row.expiration is None or row.expiration.timestamp() > time.time())


def principal_for_token(verified: VerifiedToken) -> Principal:
    """Rebuild the principal a token was issued to (for writes that need the user row)."""
    kind = verified.context.get("kind", "anonymous")
    if kind == "token":
        row = RepositoryAccessToken.objects.filter(pk=verified.context.get("token_id")).first()
        if row is None:
            return ANONYMOUS
        return Principal(
            kind="token",
            access_token_id=row.pk,
            access_token_repository_id=row.repository_id,
            access_token_role=row.role,
        )
    if verified.user_id is not None:
        user = _active_user(verified.user_id)
        if user is not None:
            return Principal(kind="robot" if user.is_robot else "user", user=user)
    return ANONYMOUS


_user_rows = RowLoader(User)


def _active_user(user_id: int) -> User | None:
    # Every push rebuilds its principal from the token: one plain query, not the ORM's.
    quote = connection.ops.quote_name
    sql = (
        f"SELECT {_user_rows.select_list()} FROM {quote(User._meta.db_table)} "
        f"WHERE {quote('id')} = %s AND {quote('is_active')} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id, True])
        row = cursor.fetchone()
    return _user_rows.build(row) if row is not None else None
