"""The Apache Kafka broker's jars: fetched once with Maven into a per-version cache, and the Java
and Maven tools that fetching and running them need.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import string
import subprocess
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TextIO

from bridge.errors import BridgeError
from bridge.log import get_logger

log = get_logger(__name__)

DEFAULT_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"
MIN_JAVA = 17
MARKER = "fetched.json"
JAVA_HINT = (
    f"Java {MIN_JAVA}+ is required to run the local Kafka broker: "
    "install openjdk-17-jre-headless (or point JAVA_HOME at a JDK/JRE 17+)"
)
MAVEN_HINT = "Maven is required to fetch the Kafka broker jars (once, then cached): install maven"
_VERSION = re.compile(r"\d+\.\d+\.\d+(?:-[A-Za-z0-9.]+)?")


class LocalKafkaError(BridgeError):
    """The local broker could not be fetched, formatted, started or stopped."""


class ToolMissing(LocalKafkaError):
    """``java`` or ``mvn`` is missing (or Java is too old); the message says what to install."""

    def __init__(self, tool: str, message: str) -> None:
        super().__init__(message)
        self.tool = tool


def last_lines(text: str, count: int) -> str:
    return "\n".join(text.splitlines()[-count:])


# -- jar cache ----------------------------------------------------------------------------------


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """``$BRIDGE_KAFKA_CACHE``, else ``$XDG_CACHE_HOME`` (or ~/.cache) + commerce-bridge/kafka."""
    env = os.environ if env is None else env
    if env.get("BRIDGE_KAFKA_CACHE"):
        return Path(env["BRIDGE_KAFKA_CACHE"]).expanduser()
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "commerce-bridge" / "kafka"


def cache_dir(version: str = DEFAULT_VERSION, env: Mapping[str, str] | None = None) -> Path:
    return cache_root(env) / checked_version(version)


def cached_libs(
    version: str = DEFAULT_VERSION, env: Mapping[str, str] | None = None
) -> Path | None:
    """The jar directory of a completed fetch, or None (a fetch without its marker never counts)."""
    folder = cache_dir(version, env)
    return folder / "libs" if (folder / MARKER).is_file() else None


def fetch(
    version: str = DEFAULT_VERSION,
    *,
    env: Mapping[str, str] | None = None,
    progress: TextIO | None = None,
    timeout: float = 900.0,
) -> Path:
    """Return the jar directory for ``version``, resolving it with Maven the first time.

    Maven writes into a temporary sibling directory that is renamed into place only after it
    succeeded and the marker file was written, so an interrupted fetch is never used. A warm
    cache needs neither Maven nor the network.
    """
    libs = cached_libs(version, env)
    if libs is not None:
        return libs
    find_java(env)  # Maven runs on Java: name the real missing piece first
    mvn = find_tool("mvn", MAVEN_HINT, env)
    root = cache_root(env)
    root.mkdir(parents=True, exist_ok=True)
    final = root / version
    log.info("kafka_fetch_started", version=version, into=str(final))
    if progress is not None:
        progress.write(f"fetching Apache Kafka {version} jars from Maven Central into {final} …\n")
        progress.flush()
    started = time.monotonic()
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", suffix=".partial", dir=root))
    try:
        pom = staging / "pom.xml"
        pom.write_text(render_pom(version), encoding="utf-8")
        command = [
            mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(pom), "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={staging / 'libs'}",
        ]  # fmt: skip
        try:
            done = subprocess.run(
                command, cwd=staging, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise LocalKafkaError(
                f"Maven did not fetch Kafka {version} within {timeout:.0f}s"
            ) from None
        if done.returncode != 0:
            raise LocalKafkaError(
                f"Maven could not fetch org.apache.kafka:kafka_2.13:{version} "
                f"(exit {done.returncode}):\n{last_lines(done.stdout + done.stderr, 20)}"
            )
        jars = sorted(p.name for p in (staging / "libs").glob("*.jar"))
        if f"kafka_2.13-{version}.jar" not in jars:
            raise LocalKafkaError(f"Maven finished but kafka_2.13-{version}.jar is missing")
        marker = {
            "version": version,
            "log4j": LOG4J_VERSION,
            "jars": jars,
            "fetched_at": datetime.now(UTC).isoformat(),
        }
        (staging / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        _move_into_place(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("kafka_fetch_done", version=version, seconds=round(time.monotonic() - started, 1))
    return final / "libs"


def render_pom(version: str) -> str:
    template = resources.files("bridge").joinpath("data/kafka-pom.xml").read_text(encoding="utf-8")
    return string.Template(template).substitute(
        kafka_version=checked_version(version), log4j_version=LOG4J_VERSION
    )


def _move_into_place(staging: Path, final: Path) -> None:
    try:
        staging.rename(final)
    except OSError:
        if (final / MARKER).is_file():
            return  # a concurrent fetch finished first: use its copy
        shutil.rmtree(final)  # a leftover without a marker is not trusted
        staging.rename(final)


def checked_version(version: str) -> str:
    if not _VERSION.fullmatch(version):
        raise LocalKafkaError(f"not a Kafka version: {version!r} (expected e.g. {DEFAULT_VERSION})")
    return version


# -- tools --------------------------------------------------------------------------------------


def find_tool(name: str, hint: str, env: Mapping[str, str] | None = None) -> str:
    """Absolute path of ``name`` on ``env["PATH"]``, or ToolMissing with ``hint``."""
    env = os.environ if env is None else env
    search = env.get("PATH", os.defpath)
    found = shutil.which(name, path=search) if search else None
    if found is None:
        raise ToolMissing(name, f"{hint} (`{name}` not found on PATH)")
    return found


def find_java(env: Mapping[str, str] | None = None) -> str:
    """``$JAVA_HOME/bin/java`` or ``java`` on PATH, checked to be Java 17 or newer."""
    env = os.environ if env is None else env
    home = env.get("JAVA_HOME")
    java = Path(home, "bin", "java") if home else None
    path = str(java) if java is not None and java.is_file() else find_tool("java", JAVA_HINT, env)
    major = _java_major(path)
    if major < MIN_JAVA:
        raise ToolMissing("java", f"{JAVA_HINT} (found Java {major} at {path})")
    return path


@functools.cache
def _java_major(java: str) -> int:
    try:
        done = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolMissing("java", f"{JAVA_HINT} ({java} does not run: {exc})") from None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if found is None:
        raise ToolMissing("java", f"{JAVA_HINT} (cannot read the version of {java})")
    major = int(found[1])
    return int(found[2] or 0) if major == 1 else major  # "1.8.0_402" is Java 8
