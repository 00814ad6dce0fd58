"""docker/compose.yaml checked without a Docker engine: every container's `shulian` command parses
with the real argument parser, ports, volumes, secrets and settings agree, health checks and the
start-up order hold, and no secret is written in the file."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy.engine import make_url

from api.cli import build_parser
from api.settings import Settings, default_secret_faults
from tests.docker.dockerfile import DOCKER, ROOT, read_compose, read_dockerfile, shulian_invocations, uncompose

COMPOSE = read_compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def argv_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    assert isinstance(command, list), "commands in exec form (a list), so no shell splits them twice"
    return [uncompose(str(word)) for word in command]


def parsed(name: str) -> list[argparse.Namespace]:
    """The `shulian` invocations of a service, parsed by the CLI's own parser."""
    out = []
    for argv in shulian_invocations(argv_of(SERVICES[name])):
        try:
            out.append(build_parser().parse_args(argv))
        except SystemExit as exc:
            pytest.fail(f"service {name}: `shulian {' '.join(argv)}` does not parse (exit {exc.code})")
    return out


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping"
    return {k: uncompose(str(v)) for k, v in env.items()}


def runs(name: str, command: str, action: str | None = None) -> bool:
    return any(a.command == command and getattr(a, "action", None) == action for a in parsed(name))


def one(command: str, action: str | None = None) -> str:
    names = [n for n in SERVICES if runs(n, command, action)]
    assert len(names) == 1, f"`shulian {command} {action or ''}` runs in {names}, want exactly one service"
    return names[0]


def the(command: str, action: str | None, name: str) -> argparse.Namespace:
    (args,) = [a for a in parsed(name) if a.command == command and getattr(a, "action", None) == action]
    return args


def shulian_services() -> list[str]:
    return [n for n, s in SERVICES.items() if s.get("build") or str(s.get("image", "")).startswith("shulian")]


def api_services() -> list[str]:
    return [n for n in SERVICES if runs(n, "serve")]


def one_shot(name: str) -> bool:
    return str(SERVICES[name].get("restart", "no")) == "no" and "healthcheck" not in SERVICES[name]


def postgres() -> str:
    (name,) = [n for n, s in SERVICES.items() if str(s.get("image", "")).startswith("postgres:")]
    return name


def mounts(name: str) -> dict[str, tuple[str, bool]]:
    """Mount target → (volume, read-only)."""
    out = {}
    for spec in SERVICES[name].get("volumes", []):
        source, target, *mode = spec.split(":")
        out[target] = (source, mode == ["ro"])
    return out


def test_every_shulian_command_parses_with_the_real_cli() -> None:
    assert set(shulian_services()) >= {*api_services(), one("init"), one("monitor")}
    for name in shulian_services():
        assert parsed(name), f"service {name} runs no shulian command"
    entry = SERVICES[api_services()[0]].get("entrypoint")
    if entry is not None:  # a wrapper must hand the command over unchanged
        assert entry[:2] == ["sh", "-c"] and uncompose(entry[2]).endswith('exec "$@"'), entry


def test_two_api_replicas_on_one_postgresql_database() -> None:
    apis = api_services()
    assert len(apis) >= 2
    db = postgres()
    env = SERVICES[db]["environment"]
    urls = {environment(SERVICES[n])["SHULIAN_DB"] for n in apis}
    assert len(urls) == 1, "the replicas share one database"
    url = make_url(urls.pop())
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.username, url.database) == (db, env["POSTGRES_USER"], env["POSTGRES_DB"])
    assert url.password is None, "no password in the URL: it comes from the db_password secret"
    for name in apis:
        args = the("serve", None, name)
        assert args.host == "0.0.0.0"
        published = [p.split(":") for p in SERVICES[name]["ports"]]
        assert all(host == "127.0.0.1" and int(inside) == args.port for host, _, inside in published), published
    outside = [p.split(":")[1] for n in apis for p in SERVICES[n]["ports"]]
    assert len(outside) == len(set(outside)), "each replica on its own host port"


def test_only_one_service_initialises_and_the_rest_wait_for_it() -> None:
    init = one("init")
    assert one_shot(init)
    for name in [*api_services(), one("witness", "add"), one("witness", "serve")]:
        assert SERVICES[name]["depends_on"][init]["condition"] == "service_completed_successfully", name
    assert SERVICES[init]["depends_on"][postgres()]["condition"] == "service_healthy"
    for name in api_services():
        assert SERVICES[name]["depends_on"][postgres()]["condition"] == "service_healthy"


def test_depends_on_conditions_fit_their_targets() -> None:
    for name, service in SERVICES.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in SERVICES, f"{name} depends on unknown {target}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{name} waits for {target} to be healthy: it has no check"
            else:
                assert condition == "service_completed_successfully" and one_shot(target), (name, target)


def test_health_checks_on_every_long_running_service() -> None:
    for name, service in SERVICES.items():
        if one_shot(name):
            continue
        check = service.get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), f"service {name} has no health check"
        words = " ".join(check["test"])
        assert "curl" not in words and "wget" not in words, "the slim image has neither"
    assert "pg_isready" in " ".join(SERVICES[postgres()]["healthcheck"]["test"])
    ready = {route.path for route in __import__("api.routes.operations", fromlist=["router"]).router.routes}
    for name in api_services():
        test = " ".join(SERVICES[name]["healthcheck"]["test"])
        (path,) = re.findall(rf"http://127\.0\.0\.1:{the('serve', None, name).port}(/\w+)", test)
        assert path in ready, f"{name} checks {path}, which the app does not serve"
    witness = one("witness", "serve")
    port = the("witness", "serve", witness).port
    assert f"127.0.0.1:{port}/key" in " ".join(SERVICES[witness]["healthcheck"]["test"])


def test_witness_and_monitor_talk_to_the_services_that_exist() -> None:
    witness = one("witness", "serve")
    add = the("witness", "add", one("witness", "add"))
    parts = urlsplit(add.url)
    assert (parts.hostname, parts.port) == (witness, the("witness", "serve", witness).port)
    monitor = the("monitor", None, one("monitor"))
    parts = urlsplit(monitor.log)
    assert parts.hostname in api_services() and parts.port == the("serve", None, parts.hostname).port
    assert SERVICES[one("monitor")]["depends_on"][parts.hostname]["condition"] == "service_healthy"
    assert SERVICES[one("witness", "add")]["depends_on"][witness]["condition"] == "service_healthy"


def test_images_are_built_from_the_dockerfile_and_run_as_its_user() -> None:
    users = read_dockerfile()[-1].all("USER")
    assert users and not users[-1].args.startswith(("0", "root"))
    for name in shulian_services():
        service = SERVICES[name]
        build = service["build"]
        assert (DOCKER / build["context"]).resolve() == ROOT
        assert (ROOT / build["dockerfile"]).resolve() == DOCKER / "Dockerfile"
        assert str(service.get("user", users[-1].args)).split(":")[0] not in ("0", "root"), name
        assert service["image"] == SERVICES[api_services()[0]]["image"], "one image for every shulian service"


def test_keys_on_volumes_shared_only_by_the_log_side() -> None:
    declared = set(COMPOSE["volumes"])
    for name in SERVICES:
        for volume, _ in mounts(name).values():
            assert volume in declared, f"{name} mounts undeclared volume {volume}"
    log_side = [n for n in shulian_services() if "SHULIAN_DB" in environment(SERVICES[n])]
    homes = {mounts(n)[environment(SERVICES[n])["SHULIAN_HOME"]][0] for n in log_side}
    assert len(homes) == 1, "the initialiser and the replicas share one SHULIAN_HOME (the log and service keys)"
    (log_home,) = homes
    for name in set(shulian_services()) - set(log_side):
        home = environment(SERVICES[name])["SHULIAN_HOME"]
        assert home in mounts(name), f"{name}'s SHULIAN_HOME is not on a volume"
        assert log_home not in {v for v, _ in mounts(name).values()}, f"{name} must not see the log's keys"
    image_dirs = " ".join(r.args for r in read_dockerfile()[-1].all("RUN"))
    for name in shulian_services():
        script = " ".join(argv_of(SERVICES[name]))
        for path in re.findall(r"(/var/lib/shulian-public)/[\w.]+", script):
            assert path in mounts(name), f"{name} uses {path} without mounting it"
            assert f"-o shulian -g shulian -m 0755 {path}" in image_dirs, "the image owns the mount point"
    assert mounts(one("monitor"))["/var/lib/shulian-public"][1], "the monitor only reads the public keys"


def test_secrets_are_files_outside_git_and_never_values_in_the_file(tmp_path: Path) -> None:
    declared = COMPOSE["secrets"]
    for key, spec in declared.items():
        assert set(spec) == {"file"} and spec["file"].startswith("./secrets/"), key
    assert "secrets/" in (DOCKER / ".gitignore").read_text().split()
    for name, service in SERVICES.items():
        used = set(service.get("secrets", []))
        assert used <= set(declared), name
        for key, value in environment(service).items():
            if re.search(r"PASSWORD|PASSPHRASE|TOKEN|SECRET", key):
                assert key.endswith("_FILE"), f"{name}: {key} carries a value; give a file under /run/secrets"
                assert value.startswith("/run/secrets/") and value.rsplit("/", 1)[1] in used, (name, key)
        entry = " ".join(service.get("entrypoint", []))
        for secret in re.findall(r"/run/secrets/(\w+)", entry):
            assert secret in used, f"{name} reads secret {secret} it does not mount"
    db_secret = SERVICES[postgres()]["environment"]["POSTGRES_PASSWORD_FILE"].rsplit("/", 1)[1]
    for name in api_services():
        assert f"/run/secrets/{db_secret}" in " ".join(SERVICES[name]["entrypoint"]), "PGPASSWORD from that secret"


def test_each_service_passes_the_default_secret_refusal(tmp_path: Path) -> None:
    """Settings from each service's environment, its passphrase file standing in as a 0600 file."""
    for name in shulian_services():
        env = environment(SERVICES[name])
        if "SHULIAN_PASSPHRASE_FILE" not in env:
            assert "SHULIAN_ENV" not in env and not runs(name, "serve"), f"{name} has no passphrase"
            continue
        assert env["SHULIAN_ENV"] != "development"
        secret = tmp_path / name
        secret.write_text("a passphrase of thirty-two chars\n")
        secret.chmod(0o600)
        values = {k[len("SHULIAN_") :].lower(): v for k, v in env.items() if k.startswith("SHULIAN_")}
        values["passphrase_file"] = str(secret)
        settings = Settings(**values)
        assert default_secret_faults(settings) == [], name
        secret.chmod(0o644)
        assert default_secret_faults(settings), "the refusal is real: a readable file fails it"
