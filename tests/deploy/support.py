"""What the deployment tests read from the repository: the variables the code reads, the ones
README's configuration table documents, the server image's entrypoint roles, nginx templates."""

from __future__ import annotations

import re
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
DEPLOY = BASE_DIR / "deploy"
ENTRYPOINT = DEPLOY / "server" / "entrypoint.sh"
NGINX_TEMPLATES = (DEPLOY / "nginx" / "quay.conf.template", DEPLOY / "nginx" / "s3.conf.template")
PLACEHOLDER = re.compile(r"\$\{(NGINX_[A-Z0-9_]+)\}")


def settings_variables() -> set[str]:
    """Variables quay_site/settings.py reads through django-environ (each also as NAME_FILE)."""
    text = (BASE_DIR / "quay_site" / "settings.py").read_text()
    return set(re.findall(r"env(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]+)\"", text))


def process_variables() -> set[str]:
    """Variables read outside the settings: gunicorn's config, `manage.py serve`, the entrypoint."""
    names = set()
    for path in (BASE_DIR / "quay_site" / "gunicorn_conf.py", BASE_DIR / "registry/management/commands/serve.py"):
        names |= set(re.findall(r"os\.environ\.get\(\s*[\"']([A-Z][A-Z0-9_]+)[\"']", path.read_text()))
    names |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", ENTRYPOINT.read_text()))
    return names


def builder_variables() -> set[str]:
    """Variables the build worker reads (builder/worker.py)."""
    text = (BASE_DIR / "builder" / "worker.py").read_text()
    return set(re.findall(r"(?:env\.get|_int_env)\(\s*\"([A-Z][A-Z0-9_]+)\"", text))


def _table_variables(markdown: str) -> set[str]:
    names = set()
    for line in markdown.splitlines():
        match = re.match(r"\|\s*(`[A-Z][A-Z0-9_]+`(?:,\s*`[A-Z][A-Z0-9_]+`)*)\s*\|", line)
        if match:
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", match.group(1)))
    return names


def readme_configuration_variables() -> set[str]:
    """The variables of README's "## Configuration" table."""
    readme = (BASE_DIR / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return _table_variables(section)


def builder_readme_variables() -> set[str]:
    return _table_variables((BASE_DIR / "builder" / "README.md").read_text())


def entrypoint_roles() -> set[str]:
    """The roles of the server image's entrypoint: the patterns of its dispatching `case`."""
    text = ENTRYPOINT.read_text()
    dispatch = text.rsplit('case "$role" in', 1)[1]
    roles = set()
    for pattern in re.findall(r"^([a-z][a-z |]*)\)\s*$", dispatch, flags=re.M):
        roles |= {name.strip() for name in pattern.split("|")}
    return roles


def template_placeholders(path: Path) -> set[str]:
    return set(PLACEHOLDER.findall(path.read_text()))


def render_template(path: Path, values: dict[str, str]) -> str:
    """Fill a template as envsubst does with a list of names: only ${NGINX_...} placeholders."""
    text = path.read_text()
    missing = template_placeholders(path) - set(values)
    assert not missing, f"{path.name}: no value for {sorted(missing)}"
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)
