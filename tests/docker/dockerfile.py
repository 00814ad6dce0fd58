"""A small reader of docker/Dockerfile and docker/compose.yaml for the tests (no Docker engine here)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yaml"


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, …
    args: str  # the rest of the logical line, continuations joined

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction (CMD ["a", "b"]), or None for the shell form."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            text = re.sub(r"^(--\S+\s+)*CMD\s+", "", text)
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def read_dockerfile(path: Path = DOCKERFILE) -> list[Stage]:
    """The stages of a Dockerfile, each with its instructions (comments and parser directives dropped)."""
    logical: list[str] = []
    current = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    if current:
        logical.append(current)
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        instruction = Instruction(keyword.upper(), " ".join(args.split()) if keyword.upper() != "RUN" else args.strip())
        if instruction.keyword == "FROM":
            parts = instruction.args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif not stages:
            raise AssertionError(f"{path}: {keyword} before the first FROM")
        else:
            stages[-1].instructions.append(instruction)
    return stages


def read_compose(path: Path = COMPOSE) -> dict[str, Any]:
    value = yaml.safe_load(path.read_text())
    assert isinstance(value, dict)
    return value


def uncompose(text: str) -> str:
    """A string as the container sees it after compose's interpolation ($$ is a literal $).

    ``${VAR:-default}`` becomes its default; a bare ``$VAR`` from the host is refused (an unescaped
    ``$`` meant for the container's shell would be replaced by compose with the host's value).
    """
    out = re.sub(r"\$\{([A-Z_][A-Z0-9_]*):-([^}]*)\}", r"\2", text.replace("$$", "\0"))
    if "$" in out:
        raise AssertionError(f"unescaped $ (compose would interpolate it from the host): {text!r}")
    return out.replace("\0", "$")


SUBSTITUTION = re.compile(r"\$\((cat [^)]+)\)|\$\{[A-Za-z_][A-Za-z0-9_]*\}")


def shulian_invocations(argv: list[str]) -> list[list[str]]:
    """Each ``shulian …`` argument vector a container command runs (in an exec form or an ``sh -c`` script).

    Shell substitutions (``$(cat FILE)``, ``${VAR}``) become a placeholder word, so the vector can be
    given to the real argument parser.
    """
    if argv and argv[0] == "shulian":
        return [argv[1:]]
    if len(argv) >= 3 and argv[0] == "sh" and argv[1] in ("-c", "-ec", "-e"):
        script = argv[2]
        inner = re.findall(r"\$\((shulian [^)]*)\)", script)  # out="$(shulian init)"
        script = re.sub(r"\$\(shulian [^)]*\)", "SUBSTITUTED", script)
        found: list[list[str]] = []
        for line in [*inner, *re.split(r"\n|&&|;|\|", SUBSTITUTION.sub("SUBSTITUTED", script))]:
            words = shlex.split(line, comments=True)
            if words and words[0] == "exec":
                words = words[1:]
            if words and words[0] == "shulian":
                found.append(_without_redirections(words[1:]))
        return found
    return []


def _without_redirections(words: list[str]) -> list[str]:
    kept: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif re.fullmatch(r"\d?(>>?|<)", word):
            skip = True  # the file named by the next word
        elif not re.match(r"\d?(>>?|<)", word):
            kept.append(word)
    return kept
