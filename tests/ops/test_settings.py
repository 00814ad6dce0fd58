"""Settings from the environment and SHULIAN_CONFIG, and the refusal of default secrets outside development."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from api.settings import Settings, SettingsError, default_secret_faults, load_settings
from tests.api.conftest import cli_env, free_port, run_cli


def refused(env: dict[str, str], *command: str) -> str:
    """`shulian serve` (or ``command``) must exit 1 with one readable line before serving anything; that line."""
    proc = run_cli(env, *(command or ("serve",)), "--port", str(free_port()), check=False)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "refusing to start" in lines[0]
    return lines[0]


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment wins over constructor values: the rules are tested without this process's SHULIAN_*."""
    for name in [n for n in os.environ if n.startswith("SHULIAN_")]:
        monkeypatch.delenv(name)


def test_serve_refuses_default_secrets(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    env.pop("SHULIAN_ENV", None)
    del env["SHULIAN_PASSPHRASE"]
    assert "set SHULIAN_PASSPHRASE or SHULIAN_PASSPHRASE_FILE" in refused(env)
    assert "default or shorter" in refused(dict(env, SHULIAN_PASSPHRASE="changeme"))
    generated = Path(env["SHULIAN_HOME"]) / "passphrase"  # what a command creates where none is set
    generated.parent.mkdir(parents=True)
    generated.write_text("a generated passphrase of some length\n")
    generated.chmod(0o600)
    assert "generated beside the keystores" in refused(dict(env, SHULIAN_PASSPHRASE_FILE=str(generated)))
    assert not (tmp_path / "ledger.db").exists()  # refused before opening anything


def test_witness_serve_refuses_default_secrets(tmp_path: Path) -> None:
    """A witness's key is a keystore too: the same rule before it serves."""
    env = cli_env(tmp_path)
    env.pop("SHULIAN_ENV", None)
    witness = ("witness", "serve", "--log-key", "log.example+01234567+AQ==")
    assert "default or shorter" in refused(dict(env, SHULIAN_PASSPHRASE="changeme"), *witness)
    del env["SHULIAN_PASSPHRASE"]
    assert "set SHULIAN_PASSPHRASE or SHULIAN_PASSPHRASE_FILE" in refused(env, *witness)
    assert not any(Path(env["SHULIAN_HOME"]).glob("witness*"))  # refused before touching the witness's files


def test_secret_rules() -> None:
    assert default_secret_faults(Settings(env="development")) == []  # development: generated secrets are fine
    assert default_secret_faults(Settings(passphrase="a long operator passphrase")) == []
    assert default_secret_faults(Settings(env="production", passphrase="Shulian")) != []  # a known default
    assert default_secret_faults(Settings(passphrase="x" * 11)) != []
    weak_token = Settings(passphrase="a long operator passphrase", metrics_token="short")
    assert "SHULIAN_METRICS_TOKEN" in default_secret_faults(weak_token)[0]


def test_passphrase_file_rules(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("a long operator passphrase\n")
    path.chmod(0o600)
    home = tmp_path / "home"
    assert default_secret_faults(Settings(passphrase_file=path, home=home)) == []
    path.chmod(0o644)
    assert "readable by other users" in default_secret_faults(Settings(passphrase_file=path, home=home))[0]
    path.chmod(0o600)
    path.write_text("short\n")
    assert "fewer than 12" in default_secret_faults(Settings(passphrase_file=path, home=home))[0]
    missing = Settings(passphrase_file=tmp_path / "nope", home=home)
    assert "not a readable file" in default_secret_faults(missing)[0]


def test_config_file_under_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "settings.toml"
    config.write_text('db = "sqlite:///from-file.db"\nrate_ip_burst = 7\nrate_key_burst = 5\nlog_format = "text"\n')
    monkeypatch.setattr(os, "environ", dict(os.environ))  # load_settings exports into it: a copy, restored after
    for name in ("SHULIAN_DB", "SHULIAN_RATE_IP_BURST", "SHULIAN_RATE_KEY_BURST", "SHULIAN_LOG_FORMAT"):
        os.environ.pop(name, None)
    monkeypatch.setenv("SHULIAN_CONFIG", str(config))
    monkeypatch.setenv("SHULIAN_RATE_KEY_BURST", "9")  # the environment wins over the file
    settings = load_settings()
    assert (settings.db, settings.rate_ip_burst, settings.rate_key_burst) == ("sqlite:///from-file.db", 7, 9)
    assert settings.effective_log_format == "text"
    # the file's values reach the packages that read the environment (keys, ledger)
    assert os.environ["SHULIAN_DB"] == "sqlite:///from-file.db"
    assert os.environ["SHULIAN_RATE_KEY_BURST"] == "9"


def test_bad_settings_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "settings.toml"
    monkeypatch.setenv("SHULIAN_CONFIG", str(config))
    config.write_text("colour = 'blue'\n")
    with pytest.raises(SettingsError, match="unknown setting 'colour'"):
        load_settings(export=False)
    config.write_text("rate_ip_burst = 'many'\n")
    with pytest.raises(SettingsError, match=r"rate_ip_burst in .*settings.toml"):
        load_settings(export=False)
    monkeypatch.delenv("SHULIAN_CONFIG")
    monkeypatch.setenv("SHULIAN_MAX_BODY_BYTES", "12")
    with pytest.raises(SettingsError, match="SHULIAN_MAX_BODY_BYTES"):
        load_settings(export=False)
    env = dict(cli_env(tmp_path), SHULIAN_CONFIG=str(config))
    config.write_text("this is not = = toml\n")
    proc = run_cli(env, "verify", check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "is not TOML" in proc.stderr and "Traceback" not in proc.stderr
