"""The build services and selectors, called directly: effective settings, the registration
secret, where a Dockerfile and its context are taken from, the queue limit, cancelling."""

from __future__ import annotations

import io

import pytest
from django.test import override_settings

from accounts import crypto
from builds import selectors, services
from builds.errors import (
    BuildError,
    BuildNotCancellable,
    BuildQueueFull,
    BuildsDisabled,
    PackageAlreadyUploaded,
    PackageError,
)
from builds.models import Build, BuildLogEntry, BuildPackage, BuildSettings, Phase
from notifications.models import NotificationEvent
from registry.models import RepositoryAccessToken
from tests.builds.api_support import (
    DOCKERFILE,
    as_principal,
    builds_on,
    job_token,
    package_dir,
    queued_build,
    tar_gz,
    uploaded_package,
    world,
)

# ---------------------------------------------------------------------------------------------
# Settings

FIXTURES = (builds_on, package_dir, world)  # pytest finds them here, by name


def test_settings_default_to_off_with_no_secret(db):
    effective = selectors.build_settings()
    assert effective.enabled is False
    assert effective.registration_secret == ""
    assert effective.max_queued_per_namespace == BuildSettings._meta.get_field("max_queued_per_namespace").default
    assert not selectors.registration_secret_matches("")
    assert not selectors.registration_secret_matches("anything")


def test_the_stored_secret_is_encrypted_and_compared(db):
    services.build_settings_update(enabled=True, registration_secret="worker-secret", max_queued_per_namespace=3)
    row = BuildSettings.objects.get(pk=1)
    assert row.registration_secret_encrypted != "worker-secret"
    assert crypto.decrypt(row.registration_secret_encrypted) == "worker-secret"
    effective = selectors.build_settings()
    assert (effective.enabled, effective.max_queued_per_namespace) == (True, 3)
    assert "worker-secret" not in repr(effective)
    assert selectors.registration_secret_matches("worker-secret")
    assert not selectors.registration_secret_matches("worker-secreT")
    assert not selectors.registration_secret_matches(None)
    services.build_settings_update(registration_secret="")
    assert not selectors.registration_secret_matches("worker-secret")
    with pytest.raises(BuildError):
        services.build_settings_update(max_queued_per_namespace=0)


def test_the_environment_wins_over_the_stored_values(db):
    services.build_settings_update(enabled=False, registration_secret="stored")
    with override_settings(FEATURE_BUILD_SUPPORT=True, BUILDER_REGISTRATION_SECRET="from-env"):
        effective = selectors.build_settings()
        assert effective.enabled and effective.enabled_from_environment
        assert effective.secret_from_environment
        assert selectors.registration_secret_matches("from-env")
        assert not selectors.registration_secret_matches("stored")
    services.build_settings_update(enabled=True)
    with override_settings(FEATURE_BUILD_SUPPORT=False):
        assert not selectors.builds_enabled()
    assert selectors.builds_enabled()
    assert selectors.registration_secret_matches("stored")


def test_a_secret_encrypted_under_another_key_is_treated_as_unset(db):
    BuildSettings.objects.create(pk=1, enabled=True, registration_secret_encrypted="gAAAAAnot-a-fernet-token")
    assert selectors.build_settings().registration_secret == ""
    assert not selectors.registration_secret_matches("")


def test_nothing_can_be_uploaded_or_built_while_builds_are_off(world):
    with pytest.raises(BuildsDisabled):
        services.package_create(owner=world.alice, mime_type="text/plain")
    with pytest.raises(BuildsDisabled):
        services.build_create(
            repository=world.app, principal=as_principal(world.alice), archive_url="http://x.example/"
        )


# ---------------------------------------------------------------------------------------------
# Paths: Quay's three inputs


ARCHIVE = tar_gz({"Dockerfile": DOCKERFILE, "a/Dockerfile": DOCKERFILE, "a/b/Dockerfile.dev": DOCKERFILE})


@pytest.mark.parametrize(
    "given, expected",
    [
        ({}, ("", "Dockerfile", "")),
        ({"subdirectory": "a"}, ("a", "a/Dockerfile", "a")),
        ({"subdirectory": "/a/"}, ("a", "a/Dockerfile", "a")),
        ({"subdirectory": "./a/./b"}, ("a/b", "a/b/Dockerfile", "a/b")),
        ({"dockerfile_path": "/a/b/Dockerfile.dev"}, ("a/b", "a/b/Dockerfile.dev", "a/b")),
        ({"dockerfile_path": "a/b/Dockerfile.dev", "context": "a"}, ("a", "a/b/Dockerfile.dev", "a")),
        ({"dockerfile_path": "Dockerfile", "context": "/"}, ("", "Dockerfile", "")),
        ({"context": "a"}, ("a", "a/Dockerfile", "a")),
    ],
)
def test_it_derives_the_dockerfile_and_context_like_quay(world, builds_on, given, expected):
    package = uploaded_package(world.alice, ARCHIVE)
    build = services.build_create(repository=world.app, principal=as_principal(world.alice), package=package, **given)
    assert (build.subdirectory, build.dockerfile_path, build.context) == expected


@pytest.mark.parametrize(
    "given",
    [
        {"subdirectory": ".."},
        {"subdirectory": "a/../.."},
        {"dockerfile_path": "../Dockerfile"},
        {"context": "../x"},
        {"dockerfile_path": "/"},
        {"dockerfile_path": "a/Dockerfile", "context": "b"},
        {"dockerfile_path": "ab/Dockerfile", "context": "a"},
        {"subdirectory": "a\x00b"},
    ],
)
def test_it_refuses_paths_leaving_the_package_or_the_context(world, builds_on, given):
    package = uploaded_package(world.alice, ARCHIVE)
    with pytest.raises(BuildError):
        services.build_create(repository=world.app, principal=as_principal(world.alice), package=package, **given)
    assert not Build.objects.exists()


def test_it_needs_exactly_one_source(world, builds_on):
    package = uploaded_package(world.alice, DOCKERFILE)
    principal = as_principal(world.alice)
    with pytest.raises(BuildError, match="exactly one source"):
        services.build_create(repository=world.app, principal=principal)
    with pytest.raises(BuildError, match="exactly one source"):
        services.build_create(
            repository=world.app, principal=principal, package=package, archive_url="http://example.com/"
        )


def test_a_file_id_must_be_an_uploaded_file_of_the_caller(world, builds_on):
    mine = services.package_create(owner=world.alice, mime_type="text/plain")
    with pytest.raises(PackageError, match="could not be found"):
        services.build_create(repository=world.app, principal=as_principal(world.alice), package=str(mine.uuid))
    theirs = uploaded_package(world.eve, DOCKERFILE)
    with pytest.raises(PackageError, match="could not be found"):
        services.build_create(repository=world.app, principal=as_principal(world.alice), package=str(theirs.uuid))
    ok = uploaded_package(world.alice, DOCKERFILE)
    build = services.build_create(repository=world.app, principal=as_principal(world.alice), package=str(ok.uuid))
    assert build.package == ok


def test_an_upload_that_ends_early_is_not_kept(world, builds_on, package_dir):
    package = services.package_create(owner=world.alice, mime_type="text/plain")
    with pytest.raises(PackageError, match="ended after 10 of 50 bytes"):
        services.package_upload(package=package, stream=io.BytesIO(DOCKERFILE[:10]), length=50)
    package.refresh_from_db()
    assert package.uploaded is None and package.size is None
    assert not (package_dir / str(package.uuid)).exists()
    services.package_upload(package=package, stream=io.BytesIO(DOCKERFILE), length=len(DOCKERFILE))
    with pytest.raises(PackageAlreadyUploaded):
        services.package_upload(package=package, stream=io.BytesIO(DOCKERFILE), length=len(DOCKERFILE))
    assert (package_dir / str(package.uuid)).read_bytes() == DOCKERFILE


# ---------------------------------------------------------------------------------------------
# Queue limit and events


def test_the_limit_counts_unfinished_builds_of_the_namespace_only(world, builds_on):
    services.build_settings_update(max_queued_per_namespace=1)
    first = queued_build(world)
    with pytest.raises(BuildQueueFull):
        queued_build(world)
    # Another namespace has its own allowance.
    from registry import services as registry_services

    globex_repo = registry_services.repository_create(
        namespace=world.globex, name="tool", principal=as_principal(world.eve)
    )
    package = uploaded_package(world.eve, DOCKERFILE)
    services.build_create(repository=globex_repo, principal=as_principal(world.eve), package=package)
    for phase in (Phase.BUILDING, Phase.PUSHING):
        Build.objects.filter(pk=first.pk).update(phase=phase)
        with pytest.raises(BuildQueueFull):
            queued_build(world)
    Build.objects.filter(pk=first.pk).update(phase=Phase.COMPLETE)
    assert queued_build(world).phase == Phase.WAITING
    assert selectors.queued_count(namespace_id=world.acme.pk) == 1


def test_it_emits_build_queued_with_the_guides_fields(world, builds_on):
    from notifications import services as notification_services

    notification_services.notification_create(
        repository=world.app,
        event="build_queued",
        method="webhook",
        config={"url": "https://hooks.example.com/q"},
        event_config={},
        title="q",
        principal=as_principal(world.alice),
        ip=None,
    )
    build = queued_build(world, tags=["x", "y"])
    payload = NotificationEvent.objects.get(kind="build_queued").payload
    assert payload["build_id"] == str(build.uuid)
    assert payload["docker_tags"] == ["x", "y"]
    assert payload["repository"] == "acme/app"
    assert payload["repo"] == "app"
    assert payload["is_manual"] is True
    assert payload["manual_user"] == "alice"
    assert payload["homepage"].endswith(f"/repository/acme/app/build/{build.uuid}")


def test_it_queues_the_dispatch_task_on_commit(world, builds_on, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        queued_build(world)
    assert any(callback.__name__ == "_queue_dispatch" for callback in callbacks)


# ---------------------------------------------------------------------------------------------
# Cancelling


def test_cancel_deletes_the_job_token_and_records_the_phase(world, builds_on, django_capture_on_commit_callbacks):
    build = queued_build(world)
    job_token(build)
    token_id = build.access_token_id
    Build.objects.filter(pk=build.pk).update(phase=Phase.PULLING)
    BuildLogEntry.objects.create(build=build, seq=0, type="phase", message="pulling")
    Build.objects.filter(pk=build.pk).update(log_count=1)
    with django_capture_on_commit_callbacks(execute=True):
        cancelled = services.build_cancel(build=build, principal=as_principal(world.alice))
    assert cancelled.phase == Phase.CANCELLED and cancelled.cancel_requested
    assert not RepositoryAccessToken.objects.filter(pk=token_id).exists()
    build.refresh_from_db()
    assert build.access_token_id is None and build.log_count == 2
    entries, total = selectors.build_logs(build=build)
    assert total == 2 and [e["message"] for e in entries] == ["pulling", "cancelled"]
    with pytest.raises(BuildNotCancellable):
        services.build_cancel(build=build, principal=as_principal(world.alice))


def test_a_package_serves_one_build_and_goes_with_it(world, builds_on, package_dir, django_capture_on_commit_callbacks):
    build = queued_build(world)
    package_uuid = build.package.uuid
    assert (package_dir / str(package_uuid)).exists()
    with django_capture_on_commit_callbacks(execute=True):
        services.build_cancel(build=build, principal=as_principal(world.alice))
    assert not BuildPackage.objects.filter(uuid=package_uuid).exists()
    assert not (package_dir / str(package_uuid)).exists()


def test_an_unused_package_can_be_deleted_but_not_a_builds(world, builds_on, package_dir):
    spare = uploaded_package(world.alice, DOCKERFILE)
    services.package_delete(package=spare)
    assert not BuildPackage.objects.filter(pk=spare.pk).exists()
    assert not (package_dir / str(spare.uuid)).exists()
    build = queued_build(world)
    with pytest.raises(BuildError, match="belongs to a build"):
        services.package_delete(package=build.package)
    assert (package_dir / str(build.package.uuid)).exists()
