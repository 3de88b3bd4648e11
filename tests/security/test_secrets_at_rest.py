"""Secrets at rest (issue #13 item 5): every secret the project must read back is stored as a
Fernet token under a key that rotates; those it only compares are stored as digests; passwords are
hashed with Argon2id."""

import json
import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts import crypto
from accounts import selectors as account_selectors
from accounts import services as account_services
from accounts.key_rotation import encrypted_fields
from accounts.models import AppToken, OAuthApplication, Robot
from notifications import services as notification_services
from notifications.models import RepositoryNotification
from tests.registry_rest.conftest import as_principal, world  # noqa: F401  (fixture)
from triggers import services as trigger_services
from triggers.models import BuildTrigger

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()


@pytest.fixture
def keys(settings):
    """Switch the configured Fernet keys; the cached MultiFernet is rebuilt each time."""

    def use(*keys: str) -> None:
        settings.FIELD_ENCRYPTION_KEYS = list(keys)
        settings.FIELD_ENCRYPTION_KEY = ""
        crypto.reset_keys()

    yield use
    crypto.reset_keys()


@pytest.fixture
def secrets_stored(world, keys, settings):  # noqa: F811
    """One stored secret of each kind, written under KEY_A; returns their plaintexts."""
    keys(KEY_A)
    settings.FEATURE_BUILD_SUPPORT = True
    robot_user, robot_token = account_services.robot_create(namespace=world.acme, short_name="rotor")
    application = account_services.oauth_application_create(organization=world.acme, name="app", actor=world.alice)
    notification, shown = notification_services.notification_create(
        repository=world.app,
        event="repo_push",
        method="webhook",
        config={"url": "https://hooks.example.com/x"},
        event_config={},
        title="hook",
        principal=as_principal(world.alice),
        ip=None,
    )
    trigger, webhook_secret = trigger_services.trigger_create_custom_git(
        repository=world.app, principal=as_principal(world.alice), build_source="git@git.example.com:acme/app.git"
    )
    app_token, app_token_value = account_services.app_token_create(user=world.alice, title="ci")
    return {
        "robot": (robot_user, robot_token),
        "oauth": (application, account_services.oauth_client_secret(application=application)),
        "webhook": (notification, shown["secret"]),
        "trigger": (trigger, webhook_secret, crypto.decrypt(trigger.private_key_encrypted)),
        "app_token": (app_token, app_token_value),
    }


def test_it_finds_every_encrypted_column():
    found = {f"{model._meta.label}.{name}" for model, name in encrypted_fields()}
    assert {
        "accounts.Robot.token_encrypted",
        "accounts.OAuthApplication.client_secret_encrypted",
        "notifications.RepositoryNotification.secrets_encrypted",
        "triggers.BuildTrigger.private_key_encrypted",
        "triggers.BuildTrigger.webhook_secret_encrypted",
        "triggers.BuildTrigger.auth_token_encrypted",
        "builds.BuildSettings.registration_secret_encrypted",
    } <= found


def test_it_stores_no_secret_in_plain_text(secrets_stored):
    robot_user, robot_token = secrets_stored["robot"]
    application, client_secret = secrets_stored["oauth"]
    notification, hook_secret = secrets_stored["webhook"]
    trigger, webhook_secret, private_key = secrets_stored["trigger"]
    app_token, app_token_value = secrets_stored["app_token"]
    assert private_key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    rows = [
        (Robot.objects.filter(user=robot_user).values().get(), robot_token),
        (OAuthApplication.objects.filter(pk=application.pk).values().get(), client_secret),
        (RepositoryNotification.objects.filter(pk=notification.pk).values().get(), hook_secret),
        (BuildTrigger.objects.filter(pk=trigger.pk).values().get(), webhook_secret),
        (BuildTrigger.objects.filter(pk=trigger.pk).values().get(), "PRIVATE KEY"),
        (AppToken.objects.filter(pk=app_token.pk).values().get(), app_token_value[AppToken.PREFIX_LENGTH :]),
    ]
    for row, secret in rows:
        stored = json.dumps(row, default=str)
        assert secret not in stored, f"a secret is stored readable in {row.keys()}"
    # Compared-only secrets are digests, not ciphertexts.
    assert AppToken.objects.get(pk=app_token.pk).token_hash == crypto.token_hash(app_token_value)
    assert BuildTrigger.objects.get(pk=trigger.pk).webhook_secret_hash == crypto.token_hash(webhook_secret)


def test_it_rotates_every_secret_to_the_new_key(secrets_stored, keys, capsys):
    robot_user, robot_token = secrets_stored["robot"]
    application, client_secret = secrets_stored["oauth"]
    notification, hook_secret = secrets_stored["webhook"]
    trigger, webhook_secret, private_key = secrets_stored["trigger"]
    before = Robot.objects.get(user=robot_user).token_encrypted

    keys(KEY_B, KEY_A)  # the new key first; the old one still decrypts
    call_command("rotate_encryption_keys")
    out = capsys.readouterr().out
    assert "accounts.Robot.token_encrypted: " in out and "re-encrypted" in out

    keys(KEY_B)  # the old key removed: everything still reads
    assert Robot.objects.get(user=robot_user).token_encrypted != before
    assert account_selectors.robot_by_token(username=robot_user.username, token=robot_token) == robot_user
    application.refresh_from_db()
    assert account_services.oauth_client_secret(application=application) == client_secret
    notification.refresh_from_db()
    assert notification_services.notification_config(notification)["secret"] == hook_secret
    trigger.refresh_from_db()
    assert crypto.decrypt(trigger.webhook_secret_encrypted) == webhook_secret
    assert crypto.decrypt(trigger.private_key_encrypted) == private_key

    keys(KEY_A)  # and the old key alone no longer reads them: they really moved
    with pytest.raises(InvalidToken):
        crypto.decrypt(Robot.objects.get(user=robot_user).token_encrypted)


def test_it_refuses_to_rotate_when_a_key_in_use_is_missing(secrets_stored, keys):
    robot_user, _ = secrets_stored["robot"]
    before = Robot.objects.get(user=robot_user).token_encrypted
    keys(KEY_B)  # KEY_A dropped too early
    with pytest.raises(CommandError, match="not configured"):
        call_command("rotate_encryption_keys")
    assert Robot.objects.get(user=robot_user).token_encrypted == before


def test_the_default_key_derived_from_secret_key_can_be_rotated_away(db, keys, alice):
    keys()  # nothing configured: the key derived from SECRET_KEY
    robot_user, token = account_services.robot_create(namespace=alice.namespace, short_name="legacy")
    keys(KEY_B)  # an explicit key set later: the derived one still decrypts (kept last)
    assert account_selectors.robot_by_token(username=robot_user.username, token=token) == robot_user
    call_command("rotate_encryption_keys")
    stored = Robot.objects.get(user=robot_user).token_encrypted
    assert Fernet(KEY_B.encode()).decrypt(stored.encode()).decode() == token


def _settings_in_subprocess(code: str, **env) -> str:
    """Evaluate ``code`` with the project's real settings (not the test settings)."""
    environment = {
        key: value for key, value in os.environ.items() if key not in {"FAST_PASSWORD_HASHER", "PREFERRED_URL_SCHEME"}
    }
    environment.update(DJANGO_SETTINGS_MODULE="quay_site.settings", DATA_DIR=str(django_settings.DATA_DIR), **env)
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        env=environment,
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_passwords_are_hashed_with_argon2id_and_old_hashes_upgrade():
    out = _settings_in_subprocess(
        "from django.contrib.auth.hashers import make_password, check_password, PBKDF2PasswordHasher\n"
        "h = make_password('correct horse')\n"
        "print(h.split('$')[0], h.split('$')[1])\n"
        "print(check_password('correct horse', h), check_password('wrong', h))\n"
        "old = PBKDF2PasswordHasher().encode('correct horse', 'salt1234salt')\n"
        "upgraded = []\n"
        "print(check_password('correct horse', old, setter=upgraded.append))\n"
        "print(make_password('x').startswith('argon2'), len(upgraded))\n"
    )
    assert out.splitlines() == ["argon2 argon2id", "True False", "True", "True 1"]


def test_cookies_are_secure_behind_tls_by_default():
    code = (
        "from django.conf import settings as s\n"
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.SESSION_COOKIE_SAMESITE)\n"
    )
    assert _settings_in_subprocess(code, PREFERRED_URL_SCHEME="https") == "True True True Lax"
    assert _settings_in_subprocess(code) == "False False True Lax"
    assert _settings_in_subprocess(code, SECURE_COOKIES="true") == "True True True Lax"
