"""deploy/compose.yaml against the code: compose itself cannot run here (no engine, no registry
to pull postgres/redis/minio/nginx from), so its file is checked for what would break at start:
variables no process reads or README does not document, roles the server image does not have,
volumes, secrets, ports and upstreams that do not line up."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import environ
import pytest
import yaml
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from builder import worker as builder_worker
from tests.deploy import support

COMPOSE = support.DEPLOY / "compose.yaml"
SERVER_IMAGE_VAR = "${QUAY_SERVER_IMAGE"
BUILDER_IMAGE_VAR = "${QUAY_BUILDER_IMAGE"
EXPECTED_SERVICES = {
    "postgres", "redis", "s3", "createbucket", "migrate", "web", "ws", "worker", "beat", "builder", "nginx",
}  # fmt: skip


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _server_services(compose: dict) -> dict[str, dict]:
    return {name: s for name, s in compose["services"].items() if s["image"].startswith(SERVER_IMAGE_VAR)}


def _split_volume(volume: str) -> tuple[str, str]:
    """``source:target[:mode]``, where the source may be a ``${NAME:-default}`` interpolation."""
    match = re.match(r"^(\$\{[^}]*\}|[^:]+):([^:]+)", volume)
    assert match, volume
    return match.group(1), match.group(2)


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment as a mapping, so that anchors merge"
    return {key: str(value) for key, value in env.items() if key != "<<"}


def test_every_service_is_there(compose):
    assert set(compose["services"]) == EXPECTED_SERVICES
    server = _server_services(compose)
    assert set(server) == {"migrate", "web", "ws", "worker", "beat"}
    assert compose["services"]["builder"]["image"].startswith(BUILDER_IMAGE_VAR)
    # Two web processes behind nginx, and exactly one beat (two would run periodic tasks twice).
    assert compose["services"]["web"]["deploy"]["replicas"] == 2
    assert compose["services"]["beat"]["deploy"]["replicas"] == 1


def test_server_variables_are_read_and_documented(compose):
    settings_vars = support.settings_variables()
    process_vars = support.process_variables()
    documented = support.readme_configuration_variables()
    for name, service in _server_services(compose).items():
        env = _environment(service)
        assert env, name
        for variable in env:
            if variable in documented:
                base = variable
                assert base in settings_vars | process_vars, f"{name}: {variable} is read by no process"
            else:
                # NAME_FILE: django-environ's FileAwareEnv (settings), or the entrypoint's own.
                assert variable.endswith("_FILE"), f"{name}: {variable} is not in README's configuration table"
                base = variable.removesuffix("_FILE")
                assert base in settings_vars or variable in process_vars, f"{name}: {variable} is read by no process"
                assert base in documented, f"{name}: {base} is not in README's configuration table"


def test_every_registry_process_has_the_same_configuration(compose):
    server = _server_services(compose)
    shared = _environment(server["worker"])
    for name, service in server.items():
        env = _environment(service)
        for key, value in shared.items():
            assert env.get(key) == value, f"{name}: {key}"
    # What the distributed setup needs shared (README: Distributed mode).
    for key in ("DATABASE_URL_FILE", "REDIS_URL", "SECRET_KEY_FILE", "FIELD_ENCRYPTION_KEY_FILE",
                "REGISTRY_TOKEN_KEY_FILE", "SERVER_HOSTNAME", "PREFERRED_URL_SCHEME", "S3_BUCKET"):  # fmt: skip
        assert key in shared, key
    assert shared["STORAGE_BACKEND"] == "s3"
    assert shared["PREFERRED_URL_SCHEME"] == "https"


def test_commands_are_entrypoint_roles(compose):
    roles = support.entrypoint_roles()
    assert {"web", "ws", "worker", "beat", "migrate", "manage", "serve"} <= roles
    for name, service in _server_services(compose).items():
        command = service["command"]
        assert isinstance(command, list) and command, name
        assert command[0] in roles, f"{name}: {command[0]} is no role of deploy/server/entrypoint.sh"
    assert _server_services(compose)["migrate"]["command"] == ["migrate"]


def test_builder_service_starts_with_its_arguments(compose, tmp_path, monkeypatch):
    """The builder's command line and environment, parsed by the worker's own parser."""
    builder = compose["services"]["builder"]
    env = _environment(builder)
    readable = support.builder_variables()
    documented = support.builder_readme_variables()
    for variable in env:
        assert variable in readable and variable in documented, variable
    assert builder["privileged"] is True
    secret_file = tmp_path / "builder_secret"
    secret_file.write_text("s3cret-registration\n")
    argv = [secret_file if arg == "/run/secrets/builder_secret" else arg for arg in builder["command"]]
    assert argv != builder["command"], "the secret comes from the builder_secret file"
    for key in list(env) + ["BUILDER_REGISTRATION_SECRET"]:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = builder_worker.parse_config([str(arg) for arg in argv])
    assert config.secret == "s3cret-registration"
    assert config.url == "ws://ws:8787/ws/builder/"
    assert "builder_secret" in builder["secrets"]


def test_ports_and_upstreams_line_up(compose):
    services = compose["services"]
    web, ws, nginx = _environment(services["web"]), _environment(services["ws"]), _environment(services["nginx"])
    assert nginx["NGINX_WEB_UPSTREAM"] == f"web:{web['PORT']}"
    assert nginx["NGINX_WS_UPSTREAM"] == f"ws:{ws['WS_PORT']}"
    assert _environment(services["builder"])["SERVER"] == f"ws://ws:{ws['WS_PORT']}"
    assert nginx["NGINX_S3_UPSTREAM"] == "s3:9000"
    assert "http://s3:9000" in " ".join(services["createbucket"]["command"])
    bucket = _environment(services["worker"])["S3_BUCKET"]
    assert f"s3/{bucket}" in " ".join(services["createbucket"]["command"])
    # Clients are sent to the S3 server by its public name, which nginx serves.
    assert _environment(services["worker"])["S3_ENDPOINT_URL"].startswith("https://${QUAY_S3_HOSTNAME")
    assert nginx["NGINX_S3_SERVER_NAME"] == "${QUAY_S3_HOSTNAME}"
    assert nginx["NGINX_SERVER_NAME"] == "${QUAY_HOSTNAME}"
    assert sorted(services["nginx"]["ports"]) == ["443:443", "80:80"]
    assert nginx["NGINX_HTTPS_LISTEN"] == "443" and nginx["NGINX_HTTP_LISTEN"] == "80"
    # The ports the server image exposes are the ones used.
    containerfile = (support.DEPLOY / "server" / "Containerfile").read_text()
    assert re.search(r"^EXPOSE 8000 8787$", containerfile, flags=re.M)
    assert web["PORT"] == "8000" and ws["WS_PORT"] == "8787"


def test_nginx_templates_get_every_placeholder(compose):
    nginx = compose["services"]["nginx"]
    env = _environment(nginx)
    mounted = {}
    for volume in nginx["volumes"]:
        source, target = _split_volume(volume)
        if target.startswith("/etc/nginx/templates/"):
            mounted[Path(target).name] = (COMPOSE.parent / source).resolve()
    assert set(mounted) == {path.name for path in support.NGINX_TEMPLATES}
    wanted = set()
    for path in mounted.values():
        assert path.is_file(), path
        wanted |= support.template_placeholders(path)
    assert wanted == {key for key in env if key.startswith("NGINX_")}
    # The certificate files are in the mounted TLS directory.
    tls_target = next(target for source, target in map(_split_volume, nginx["volumes"]) if "TLS" in source)
    assert env["NGINX_TLS_CERT"].startswith(tls_target + "/") and env["NGINX_TLS_KEY"].startswith(tls_target + "/")


def test_volumes_and_depends_on(compose):
    services = compose["services"]
    declared = set(compose["volumes"])
    used = set()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source, _ = _split_volume(volume)
            if not source.startswith((".", "/", "$")):
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
        depends = service.get("depends_on", {})
        for other in depends:
            assert other in services, f"{name} depends on unknown {other}"
            condition = depends[other].get("condition") if isinstance(depends, dict) else None
            if condition == "service_healthy":
                assert "healthcheck" in services[other], f"{other} has no healthcheck for {name} to wait on"
            if condition == "service_completed_successfully":
                assert services[other].get("restart") == "no", other
    assert used == declared
    # Registry processes start after migrations and the bucket; migrations after the database.
    for name in ("web", "ws", "worker", "beat"):
        assert set(services[name]["depends_on"]) == {"migrate", "createbucket"}
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_secrets_are_made_by_make_secrets(compose, tmp_path):
    """Every secret compose mounts is a file deploy/make-secrets.sh makes, in the right shape."""
    script = tmp_path / "make-secrets.sh"
    script.write_bytes((support.DEPLOY / "make-secrets.sh").read_bytes())
    script.chmod(0o755)
    first = subprocess.run([str(script)], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    made = {path.name for path in (tmp_path / "secrets").iterdir()}
    declared = compose["secrets"]
    assert made == set(declared)
    for name, secret in declared.items():
        assert secret["file"] == f"./secrets/{name}"
    for name, service in compose["services"].items():
        for secret in service.get("secrets", []):
            assert secret in declared, f"{name}: secret {secret}"
        for key, value in _environment(service).items():
            if value.startswith("/run/secrets/"):
                assert value.removeprefix("/run/secrets/") in service["secrets"], f"{name}: {key}"
    secrets = {name: (tmp_path / "secrets" / name).read_text().strip() for name in made}
    load_pem_private_key(secrets["registry_token_key"].encode(), password=None)
    Fernet(secrets["field_encryption_key"].encode())
    database = environ.Env.db_url_config(secrets["database_url"])
    expected = ("postgres", "quay", secrets["postgres_password"])
    assert (database["HOST"], database["NAME"], database["PASSWORD"]) == expected
    # A second run keeps what is there.
    again = subprocess.run([str(script)], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stdout == ""
    assert secrets == {name: (tmp_path / "secrets" / name).read_text().strip() for name in made}
