"""Dockerfile and .dockerignore: static checks (no Docker engine here), tied to the manifests."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import yaml

from bridge.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
UID = "10001"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    result: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        word, _, rest = (current + line).partition(" ")
        result.append((word.upper(), rest.strip()))
        current = ""
    return result


def stages() -> dict[str, list[tuple[str, str]]]:
    """The instructions of each named build stage."""
    result: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for word, rest in instructions((ROOT / "Dockerfile").read_text(encoding="utf-8")):
        if word == "FROM":
            current = result.setdefault(rest.split(" AS ")[1], [])
        current.append((word, rest))
    return result


def arguments(stage: str, word: str) -> list[str]:
    return [rest for w, rest in stages()[stage] if w == word]


def ingress_container() -> dict[str, Any]:
    with (ROOT / "deploy" / "base" / "ingress.yaml").open(encoding="utf-8") as f:
        (deployment,) = [d for d in yaml.safe_load_all(f) if d and d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = container
    return result


def test_two_stages_from_python_311_slim() -> None:
    """A build stage and a runtime stage, both FROM the ARG that defaults to python:3.11-slim."""
    (first_word, first_args), *_ = instructions((ROOT / "Dockerfile").read_text(encoding="utf-8"))
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") == (first_word, first_args)
    froms = {name: arguments(name, "FROM") for name in stages()}
    expected = {
        "build": ["${PYTHON_IMAGE} AS build"],
        "runtime": ["${PYTHON_IMAGE} AS runtime"],
    }
    assert expected == froms


def test_build_makes_wheels_and_runtime_installs_only_them_into_a_venv() -> None:
    """The wheel is built in the build stage; the runtime venv installs from it, offline."""
    assert ["python -m pip wheel --wheel-dir /wheels ."] == arguments("build", "RUN")
    install = " ".join(arguments("runtime", "RUN"))
    assert "--mount=type=bind,from=build,source=/wheels,target=/wheels" in install
    assert "python -m venv /opt/bridge" in install
    assert "/opt/bridge/bin/pip install --no-index --find-links=/wheels commerce-bridge" in install


def test_runtime_runs_bridge_ingress_as_uid_10001() -> None:
    """USER 10001, ENTRYPOINT bridge, CMD a valid `commerce-bridge ingress`, EXPOSE the ingress
    ports (webhooks, ops)."""
    assert [f"{UID}:{UID}"] == arguments("runtime", "USER")
    assert [["commerce-bridge"]] == [json.loads(a) for a in arguments("runtime", "ENTRYPOINT")]
    (cmd,) = [json.loads(a) for a in arguments("runtime", "CMD")]
    assert ["ingress", "--config", "/etc/bridge/bridge.toml"] == cmd
    parsed = build_parser().parse_args(cmd)
    assert ("ingress", "/etc/bridge/bridge.toml") == (parsed.command, parsed.config)
    ports = [str(p["containerPort"]) for p in ingress_container()["ports"]]
    assert ports == [p for ports in arguments("runtime", "EXPOSE") for p in ports.split()]


def test_runtime_environment_and_writable_outbox_directory() -> None:
    """Python writes no bytecode and buffers no output; /var/bridge belongs to uid 10001."""
    env = dict(
        pair.split("=", 1) for line in arguments("runtime", "ENV") for pair in shlex.split(line)
    )
    expected = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    assert expected == {k: env[k] for k in expected}
    assert f"install -d -o {UID} -g {UID} -m 0750 /var/bridge" in " ".join(
        arguments("runtime", "RUN")
    )


def test_no_java_in_the_image() -> None:
    """No JDK/JRE is installed: Kafka runs elsewhere in production."""
    runs = [rest for name in stages() for rest in arguments(name, "RUN")]
    assert [] == [r for r in runs if re.search(r"\b(java|jdk|jre|openjdk)\b", r, re.IGNORECASE)]


def test_dockerignore_keeps_local_state_out_and_the_package_in() -> None:
    """.dockerignore drops venv, caches, .git, .bridge-dev; everything the COPYs need stays."""
    ignored = [
        line
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    required = {".venv", ".git", ".bridge-dev", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
    assert set() == required - set(ignored)
    copies = [shlex.split(rest) for name in stages() for rest in arguments(name, "COPY")]
    sources = {src.rstrip("/") for words in copies if words[0][:2] != "--" for src in words[:-1]}
    assert [] == [s for s in sources if any(fnmatch.fnmatch(s, p) for p in ignored)]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {
        path.name
        for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]
        for path in ROOT.glob(pattern)
        if (path / "__init__.py").is_file()
    }
    assert packages | {"pyproject.toml", project["project"]["readme"]} == sources
