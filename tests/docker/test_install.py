"""docker/install.sh, the image's install steps, run without Docker on a fresh virtual environment.

The sources are what the Dockerfile's build stage copies (so a package it forgets fails here); the
wheel must hold the portal's assets and the migrations; the installed `shulian` must answer --help
and initialise and verify a ledger from the installed files alone (migrations included).

The dependencies' wheels are fetched once per dependency set into the user's cache (the slow, networked
part of the first run); every run after that builds and installs offline from them (PIP_NO_INDEX).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.docker.dockerfile import DOCKER, ROOT, read_dockerfile

pytestmark = pytest.mark.slow

INSTALL = DOCKER / "install.sh"


def wheelhouse() -> Path:
    """Wheels of every dependency and of the build backend, cached by the dependency list."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = sorted([*config["project"]["dependencies"], *config["build-system"]["requires"]])
    key = hashlib.sha256("\n".join([sys.version.split()[0], *wanted]).encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "shulian-tests"
    cache = base / f"wheelhouse-{key}"
    if not (cache / "complete").exists():
        tmp = base / f"wheelhouse-{key}.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(tmp), *wanted],
            check=True,
            timeout=600,
        )
        (tmp / "complete").touch()
        try:
            tmp.rename(cache)
        except OSError:  # made meanwhile by another run
            shutil.rmtree(tmp, ignore_errors=True)
    return cache


def build_context(dest: Path) -> Path:
    """The build stage's /src: each source its COPY lines name, without caches."""
    src = dest / "src"
    src.mkdir()
    for copy in read_dockerfile()[0].all("COPY"):
        *sources, target = copy.args.split()
        if target.startswith("/"):
            continue  # the install script, copied next to the tools
        for source in sources:
            path = ROOT / source
            into = src / (Path(source).name if target in ("./", ".") else target)
            if path.is_dir():
                shutil.copytree(path, into, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(path, into)
    return src


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHULIAN_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


def run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-3000:]}"
    return proc


def test_install_steps_on_a_fresh_venv(tmp_path: Path) -> None:
    wheels_from = wheelhouse()
    src = build_context(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    offline = clean_env(PYTHON=str(python), PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels_from))
    wheels = tmp_path / "wheels"

    run(["sh", str(INSTALL), "wheels", str(src), str(wheels)], offline, tmp_path)
    (wheel,) = wheels.glob("shulian-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = [
        p.relative_to(src).as_posix()
        for part in ("api/portal/templates", "api/portal/i18n", "api/portal/static", "ledger/migrations")
        for p in (src / part).rglob("*")
        if p.is_file()
    ]
    assert any(e.startswith("api/portal/static/vendor/") for e in expected)
    assert "ledger/migrations/alembic.ini" in expected and any("/versions/" in e for e in expected)
    missing = sorted(set(expected) - names)
    assert not missing, f"the wheel lacks {missing[:5]}"

    run(["sh", str(INSTALL), "install", str(wheels)], offline, tmp_path)
    shulian = venv / "bin" / "shulian"
    assert "serve" in run([str(shulian), "--help"], offline, tmp_path).stdout

    # The installed files alone (not this checkout): the modules load from the venv, and a ledger
    # is created through the packaged migrations and verifies.
    where = run([str(python), "-c", "import api.portal, ledger.migrations as m; print(m.__file__)"], offline, tmp_path)
    assert where.stdout.startswith(str(venv))
    ledger_env = clean_env(
        SHULIAN_HOME=str(tmp_path / "home"),
        SHULIAN_DB=f"sqlite:///{tmp_path / 'ledger.db'}",
        SHULIAN_PASSPHRASE="install test passphrase",
    )
    assert "initialised" in run([str(shulian), "init"], ledger_env, tmp_path).stdout
    verified = run([str(shulian), "verify", "-q"], ledger_env, tmp_path).stdout
    assert re.fullmatch(r"OK: \d+ entries, 1 blocks verified\n", verified), verified


def test_install_script_refuses_bad_usage(tmp_path: Path) -> None:
    for argv in ([], ["wheels"], ["install"], ["publish", "x"]):
        proc = subprocess.run(["sh", str(INSTALL), *argv], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2 and proc.stderr.startswith("usage: install.sh"), (argv, proc.stderr)
