"""Every SHULIAN_* setting in one place: from the environment and an optional TOML file (pydantic-settings).

``SHULIAN_CONFIG=/path/settings.toml`` names a file of the same settings by field name (``db = "…"``,
``rate_key_per_s = 200``); the environment wins over the file. The packages below ``api`` (``keys``,
``ledger``) read their few variables from the environment, so ``load_settings`` exports the values
it took from the file into the environment of this process (and so of its workers) where unset.

Outside ``SHULIAN_ENV=development`` the service refuses default or generated secrets
(``default_secret_faults``): the keystores' passphrase must be set by the operator, not the random
file created beside the keystores it protects.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEVELOPMENT = "development"
CONFIG_VARIABLE = "SHULIAN_CONFIG"
PREFIX = "SHULIAN_"
MIN_PASSPHRASE = 12
# Passphrases found in examples and tutorials: refused outside development whatever their length.
KNOWN_PASSPHRASES = frozenset({"changeme", "change-me", "change me", "password", "passphrase", "secret", "shulian"})


class SettingsError(ValueError):
    """A setting that cannot be used, as one readable line."""


class Settings(BaseSettings):
    """The service's settings; field ``x`` is the variable ``SHULIAN_X`` or the key ``x`` in the file."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="forbid", frozen=True)

    env: str = Field("", description="deployment environment; 'development' allows generated secrets and demo sign-in")
    db: str | None = Field(None, description="primary database URL (default sqlite:///var/shulian.db)")
    db_read: str | None = Field(None, description="read-only database URL for audit and proof queries")
    # PostgreSQL pools, per engine and process (read by ledger.store.pool_settings from the environment)
    db_pool_size: int = Field(5, ge=1, description="PostgreSQL connections kept open per pool")
    db_pool_overflow: int = Field(10, ge=0, description="extra PostgreSQL connections opened under load")
    db_pool_timeout: float = Field(30.0, ge=0, description="seconds to wait for a pooled connection")
    db_pool_recycle: int = Field(1800, ge=-1, description="seconds before a connection is replaced (-1: never)")
    db_pool_pre_ping: bool = Field(True, description="test a pooled connection before use")
    home: Path = Field(Path("var"), description="keys and local secrets")
    origin: str | None = Field(None, description="checkpoint origin used by `shulian init`")
    passphrase: SecretStr | None = Field(None, description="keystore passphrase")
    passphrase_file: Path | None = Field(None, description="file holding the keystore passphrase")
    url: str = Field("http://127.0.0.1:8000", description="server used by the people's commands")
    keystore: Path | None = Field(None, description="keystore used by the people's commands")
    log_format: Literal["json", "text"] | None = Field(
        None, description="serve logs; default json, text in development"
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    metrics_token: SecretStr | None = Field(None, description="when set, GET /metrics needs 'Authorization: Bearer …'")
    rate_key_per_s: float = Field(500.0, ge=0, description="signed requests per second per key id (0: no limit)")
    rate_key_burst: int = Field(1000, ge=1, description="token bucket size per key id")
    rate_ip_per_s: float = Field(500.0, ge=0, description="other requests per second per client address (0: no limit)")
    rate_ip_burst: int = Field(1000, ge=1, description="token bucket size per client address")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="largest request body accepted (413 beyond)")
    verify_metrics: Path | None = Field(None, description="`shulian verify` writes its progress gauges to this file")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment first, then the file's values (passed to the constructor by load_settings).
        return env_settings, init_settings

    @property
    def development(self) -> bool:
        return self.env.strip() == DEVELOPMENT

    @property
    def effective_log_format(self) -> Literal["json", "text"]:
        if self.log_format is not None:
            return self.log_format
        return "text" if self.development else "json"


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise SettingsError(f"cannot read {CONFIG_VARIABLE} {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{CONFIG_VARIABLE} {path} is not TOML: {exc}") from exc


def _one_line(exc: ValidationError, source: str) -> str:
    first = exc.errors()[0]
    name = ".".join(str(p) for p in first.get("loc", ()))
    where = f"{PREFIX}{name.upper()}" if not source else f"{name} in {source}"
    return f"setting {where}: {first.get('msg', 'invalid')}"


def _as_env(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value)


def load_settings(*, export: bool = True) -> Settings:
    """The settings from the environment and ``SHULIAN_CONFIG``; the file's values exported where unset."""
    config = os.environ.get(CONFIG_VARIABLE, "").strip()
    values = _read_config(Path(config)) if config else {}
    unknown = sorted(set(values) - set(Settings.model_fields))
    if unknown:
        raise SettingsError(f"{CONFIG_VARIABLE} {config}: unknown setting {unknown[0]!r}")
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        # Say which source is wrong: a value from the environment wins over the file's.
        name = str(exc.errors()[0].get("loc", ("",))[0])
        from_env = f"{PREFIX}{name.upper()}" in os.environ
        raise SettingsError(_one_line(exc, "" if from_env or name not in values else config)) from exc
    if export:
        for name in values:
            variable = f"{PREFIX}{name.upper()}"
            value = getattr(settings, name)
            if variable not in os.environ and value is not None:
                os.environ[variable] = _as_env(value)
    return settings


def default_secret_faults(settings: Settings) -> list[str]:
    """What makes these secrets unfit outside development (empty when fit, or in development)."""
    if settings.development:
        return []
    faults: list[str] = []
    where = f"SHULIAN_ENV is {settings.env.strip() or 'unset'}, not development"
    if settings.passphrase is not None:
        value = settings.passphrase.get_secret_value()
        if len(value) < MIN_PASSPHRASE or value.strip().lower() in KNOWN_PASSPHRASES:
            faults.append(f"{where}: SHULIAN_PASSPHRASE is a default or shorter than {MIN_PASSPHRASE} characters")
    elif settings.passphrase_file is not None:
        path = settings.passphrase_file
        generated = (settings.home / "passphrase").resolve()
        if path.resolve() == generated:
            faults.append(f"{where}: SHULIAN_PASSPHRASE_FILE is the passphrase generated beside the keystores")
        elif not path.is_file():
            faults.append(f"{where}: SHULIAN_PASSPHRASE_FILE {path} is not a readable file")
        else:
            if stat.S_IMODE(path.stat().st_mode) & 0o077:
                faults.append(f"{where}: SHULIAN_PASSPHRASE_FILE {path} is readable by other users (chmod 600)")
            if len(path.read_bytes().strip()) < MIN_PASSPHRASE:
                faults.append(f"{where}: SHULIAN_PASSPHRASE_FILE holds fewer than {MIN_PASSPHRASE} characters")
    else:
        faults.append(
            f"{where}: set SHULIAN_PASSPHRASE or SHULIAN_PASSPHRASE_FILE"
            " (the passphrase generated under SHULIAN_HOME lies beside the keystores it protects)"
        )
    token = settings.metrics_token
    if token is not None and len(token.get_secret_value()) < 16:
        faults.append(f"{where}: SHULIAN_METRICS_TOKEN is shorter than 16 characters")
    return faults


def refuse_default_secrets(settings: Settings) -> None:
    """Raise ``SettingsError`` naming the first unfit secret (outside development)."""
    faults = default_secret_faults(settings)
    if faults:
        raise SettingsError(faults[0] + " (refusing to start)")
