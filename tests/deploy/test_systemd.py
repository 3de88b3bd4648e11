"""deploy/systemd: the units pass `systemd-analyze verify`, with their commands found in this
repository's layout, and run the same commands as the server image's entrypoint roles."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tests.deploy import support

UNITS_DIR = support.DEPLOY / "systemd"
UNITS = ("quay-web", "quay-ws", "quay-worker", "quay-beat", "quay-builder", "quay-migrate")
VENV = Path(sys.prefix)


def _unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string((UNITS_DIR / f"{name}.service").read_text())
    return parser


def _exec_start(name: str) -> list[str]:
    return shlex.split(_unit(name)["Service"]["ExecStart"])


def test_units_verify(tmp_path):
    """`systemd-analyze verify` on copies whose /opt/quay paths point into this checkout.

    The build worker's `quay-builder` (what `pip install ./builder` makes, as the builder image
    does: test_images.py runs it there) becomes `python -m builder` from this checkout."""
    assert shutil.which("systemd-analyze"), "systemd-analyze is needed (apt-get install systemd)"
    replacements = {
        "/opt/quay/venv/": f"{VENV}/",
        "/opt/quay/app/": f"{support.BASE_DIR}/",
        "/opt/quay/app": str(support.BASE_DIR),
        "/opt/quay-builder/bin/quay-builder": f"{VENV}/bin/python -m builder",
    }
    (tmp_path / "units").mkdir()
    paths = []
    for name in UNITS:
        text = (UNITS_DIR / f"{name}.service").read_text()
        for old, new in replacements.items():
            text = text.replace(old, new)
        path = tmp_path / "units" / f"{name}.service"
        path.write_text(text)
        paths.append(str(path))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *paths], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    output = (result.stdout + result.stderr).strip()
    # Lines about other units of this machine (it may not run systemd at all) are not ours.
    ours = [line for line in output.splitlines() if line.startswith("quay-")]
    assert result.returncode == 0 and not ours, output
    # The worker the builder unit starts, from the working directory it would have.
    usage = subprocess.run(
        [VENV / "bin" / "python", "-m", "builder", "--help"], capture_output=True, text=True, timeout=60,
        cwd=support.BASE_DIR,
    )  # fmt: skip
    assert usage.returncode == 0 and "usage: quay-builder" in usage.stdout, usage.stderr


def test_units_use_the_plain_host_layout():
    for name in UNITS:
        unit = _unit(name)
        service = unit["Service"]
        command = _exec_start(name)
        if name == "quay-builder":
            assert command == ["/opt/quay-builder/bin/quay-builder"]
            assert service["EnvironmentFile"] == "/etc/quay/builder.env"
            continue
        assert command[0] == "/opt/quay/venv/bin/python", name
        assert service["WorkingDirectory"] == "/opt/quay/app"
        assert service["EnvironmentFile"] == "/etc/quay/quay.env"
        assert service["User"] == "quay" and service["StateDirectory"] == "quay"
        assert "DATA_DIR=/var/lib/quay" in service["Environment"].split()
        if name != "quay-migrate":
            assert "quay-migrate.service" in unit["Unit"]["After"].split()
            assert unit["Install"]["WantedBy"] == "multi-user.target"


def _entrypoint_commands() -> dict[str, list[str]]:
    """The command each role of deploy/server/entrypoint.sh execs (without "$@")."""
    text = support.ENTRYPOINT.read_text().rsplit('case "$role" in', 1)[1]
    commands = {}
    for role, body in re.findall(r"^([a-z]+)\)\n(.*?)\n\s*;;", text, flags=re.M | re.S):
        line = next((ln.strip() for ln in body.splitlines() if ln.strip().startswith("exec ")), None)
        if line:
            commands[role] = [word for word in shlex.split(line)[1:] if word != "$@"]
    return commands


def test_units_run_what_the_image_runs():
    """The same processes on a plain host as in the containers (modulo paths and variables)."""
    roles = _entrypoint_commands()

    def normalized(words):
        out = []
        for word in words:
            word = word.replace("/opt/quay/venv/bin/python", "python").replace("/opt/quay/app/", "")
            word = re.sub(r"\$\{(\w+)(:-[^}]*)?\}", r"$\1", word)
            out.append(word.replace("%%h", "%h"))
        return [w for w in out if not w.startswith(("--loglevel", "-n", "worker@"))]

    assert normalized(_exec_start("quay-web")) == normalized(roles["web"])
    assert normalized(_exec_start("quay-ws")) == normalized(roles["ws"])
    assert normalized(_exec_start("quay-worker")) == normalized(roles["worker"])
    assert normalized(_exec_start("quay-beat")) == normalized(roles["beat"])
    assert "manage.py migrate --noinput" in _unit("quay-migrate")["Service"]["ExecStart"]


def test_environment_examples_are_documented():
    documented = support.readme_configuration_variables()
    settings_vars = support.settings_variables()
    for line in (UNITS_DIR / "quay.env.example").read_text().splitlines():
        match = re.match(r"^#?([A-Z][A-Z0-9_]+)=", line)
        if not match:
            continue
        name = match.group(1)
        base = name if name in documented else name.removesuffix("_FILE")
        assert base in documented, name
        if base != name:
            assert base in settings_vars, f"{name}: NAME_FILE works for settings variables only"
    builder_vars = support.builder_readme_variables()
    for line in (UNITS_DIR / "builder.env.example").read_text().splitlines():
        if re.match(r"^[A-Z]", line):
            assert line.split("=", 1)[0] in builder_vars, line
