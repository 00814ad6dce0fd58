"""docker/Dockerfile's structure: two stages, a slim runtime without compilers, a dedicated non-root
user, the state on a volume, a health check without curl, `shulian` as the entrypoint."""

from __future__ import annotations

import fnmatch
import tomllib

from api.cli import build_parser
from tests.docker.dockerfile import DOCKER, DOCKERFILE, ROOT, read_dockerfile

COMPILERS = ("gcc", "g++", "clang", "build-essential", "make", "python3-dev", "libpq-dev", "cargo", "rustc")


def runtime():
    return read_dockerfile()[-1]


def test_two_stages_the_runtime_on_slim_python_311() -> None:
    stages = read_dockerfile()
    assert len(stages) == 2
    build, final = stages
    assert build.name == "build"
    for stage in stages:
        assert stage.base.startswith("python:3.11-slim"), stage.base
    copies = [c.args for c in final.all("COPY")]
    assert all("--from" not in c for c in copies), "the runtime takes the wheels by a bind mount, not a layer"
    mounts = [r.args for r in final.all("RUN") if "--mount=type=bind,from=build" in r.args]
    assert len(mounts) == 1 and "shulian-install install /wheels" in mounts[0]


def test_no_compiler_in_the_runtime_stage() -> None:
    for run in runtime().all("RUN"):
        words = run.args.replace("\\", " ").split()
        assert not any(w in COMPILERS for w in words), run.args
        assert "apt-get install" not in run.args, "the runtime installs nothing from Debian"
    assert "--no-index" in (DOCKER / "install.sh").read_text(), "the runtime install takes no source from an index"


def test_the_build_stage_copies_every_package_the_wheel_holds() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    top = {p.split(".")[0] for p in config["tool"]["setuptools"]["packages"]}
    copied = {c.args.split()[0] for c in read_dockerfile()[0].all("COPY")}
    assert top <= copied, f"packages the Dockerfile does not copy: {sorted(top - copied)}"
    assert {"pyproject.toml", "README.md"} <= {w for c in read_dockerfile()[0].all("COPY") for w in c.args.split()}


def test_the_dockerignore_lets_through_what_is_copied() -> None:
    rules = [
        line.strip()
        for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        verdict = False
        for rule in rules:
            negate = rule.startswith("!")
            if fnmatch.fnmatch(path, rule.lstrip("!")):
                verdict = not negate
        return verdict

    for stage in read_dockerfile():
        for copy in stage.all("COPY"):
            source = copy.args.split()[0]
            if not source.startswith("--"):
                assert (ROOT / source).exists(), source
                assert not ignored(source), f"{source} is copied but ignored by the build context"
    assert ignored(".venv") and ignored("var") and ignored("bench")


def test_a_dedicated_non_root_user_and_state_on_a_volume() -> None:
    final = runtime()
    users = final.all("USER")
    assert users, "no USER: the image would run as root"
    uid = users[-1].args.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, f"USER {users[-1].args}: a numeric uid of its own"
    assert any(f"--uid {uid}" in r.args for r in final.all("RUN")), "the uid is a user the image creates"
    env = " ".join(e.args for e in final.all("ENV"))
    assert "SHULIAN_HOME=/var/lib/shulian" in env
    assert "SHULIAN_DB=sqlite:////var/lib/shulian/" in env, "the default SQLite database lies on the volume"
    volumes = [v for i in final.all("VOLUME") for v in (i.exec_form() or i.args.split())]
    assert "/var/lib/shulian" in volumes
    assert any("-o shulian" in r.args and "/var/lib/shulian " in r.args + " " for r in final.all("RUN"))
    keywords = [i.keyword for i in final.instructions]
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN"), "USER after every RUN"


def test_healthcheck_asks_healthz_with_python() -> None:
    checks = runtime().all("HEALTHCHECK")
    assert len(checks) == 1
    argv = checks[0].exec_form()
    assert argv is not None and argv[0] == "python", "the slim image has no curl"
    assert "/healthz" in argv[-1] and "curl" not in checks[0].args and "wget" not in checks[0].args
    expose = [e.args for e in runtime().all("EXPOSE")]
    assert expose == ["8000"]
    assert "127.0.0.1:8000/healthz" in argv[-1]


def test_entrypoint_is_shulian_and_the_default_command_parses() -> None:
    final = runtime()
    (entrypoint,) = final.all("ENTRYPOINT")
    assert entrypoint.exec_form() == ["shulian"]
    (cmd,) = final.all("CMD")
    argv = cmd.exec_form()
    assert argv is not None
    args = build_parser().parse_args(argv)
    assert args.command == "serve" and args.host == "0.0.0.0" and args.port == 8000


def test_the_install_script_is_what_the_dockerfile_runs() -> None:
    stages = read_dockerfile()
    for stage in stages:
        (copy,) = [c for c in stage.all("COPY") if c.args.startswith("docker/install.sh")]
        assert copy.args.split()[1] == "/usr/local/bin/shulian-install"
    assert any(r.args.startswith("shulian-install wheels /src /wheels") for r in stages[0].all("RUN"))
    assert (DOCKERFILE.parent / "install.sh").stat().st_mode & 0o111, "install.sh is executable"
