"""A real PostgreSQL server for the test session, and a fresh schema per test.

``postgres_dsn`` (session): ``BRIDGE_TEST_POSTGRES_DSN`` if set, else a throw-away cluster made with
``initdb`` and started with ``pg_ctl`` on a free 127.0.0.1 port, its socket in the temp directory,
``fsync=off``. PostgreSQL refuses to run as root, so as root the server runs as the ``postgres``
user (created by the Debian package) or, failing that, ``nobody``; no user is ever created.
Missing binaries fail the session loudly: the PostgreSQL tests are never skipped.

``postgres_schema_dsn`` (function): a new schema per test, selected through ``search_path`` in the
dsn (asyncpg passes unknown query parameters as server settings), dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

ENV_DSN = "BRIDGE_TEST_POSTGRES_DSN"
DATABASE = "bridge_test"
INSTALL_HINT = (
    "install PostgreSQL (apt-get install postgresql; `make` does it) "
    f"or point {ENV_DSN} at a server"
)


def find_bin_dir() -> Path:
    """The directory holding initdb and pg_ctl: PATH first, then /usr/lib/postgresql/*/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    candidates = []
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            version = re.match(r"\d+", path.parent.name)
            candidates.append((int(version.group()) if version else 0, path))
    if not candidates:
        pytest.fail(f"PostgreSQL server binaries (initdb, pg_ctl) not found: {INSTALL_HINT}")
    return max(candidates)[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_user() -> str | None:
    """The account to run the server as: None for the current one, unless that is root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    pytest.fail("running as root and neither a 'postgres' nor a 'nobody' user exists")


def _runuser() -> str:
    """util-linux's runuser: on PATH, else where Debian puts it (a root PATH may lack sbin)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = shutil.which("runuser", path=search)
    if found is None:
        pytest.fail(f"runuser (util-linux) not found: {INSTALL_HINT}")
    return found


def run_as(user: str | None, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    command = argv if user is None else [_runuser(), "-u", user, "--", *argv]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def _check(result: subprocess.CompletedProcess[str], what: str, log: Path | None = None) -> None:
    if result.returncode == 0:
        return
    server_log = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    pytest.fail(
        f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n{server_log}",
        pytrace=False,
    )


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """initdb + pg_ctl start a cluster in a temp dir; yield its dsn; stop and remove it."""
    bin_dir = find_bin_dir()
    user = server_user()
    tmp = Path(tempfile.mkdtemp(prefix="bridge-pg-"))
    data, log = tmp / "data", tmp / "server.log"
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(tmp, entry.pw_uid, entry.pw_gid)
    started = False
    try:
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
        result = run_as(user, [*initdb, "-E", "UTF8", "--locale=C", "--no-sync"], cwd=tmp)
        _check(result, "initdb")
        for _attempt in range(3):  # a free port can be taken between probing and binding
            port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={tmp}"
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60"]
            result = run_as(user, [*pg_ctl, "-o", options, "start"], cwd=tmp)
            if result.returncode == 0:
                started = True
                break
            if "could not bind" not in log.read_text(errors="replace"):
                break
        _check(result, "pg_ctl start", log)
        createdb = [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
        _check(run_as(None, [*createdb, DATABASE], cwd=tmp), "createdb", log)
        yield f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}"
    finally:
        if started:
            run_as(
                user, [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], tmp
            )
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A PostgreSQL database for the whole session (external, or a throw-away cluster)."""
    external = os.environ.get(ENV_DSN)
    if external:
        yield external
        return
    with postgres_cluster() as dsn:
        yield dsn


@pytest.fixture
async def postgres_schema_dsn(postgres_dsn: str) -> AsyncIterator[str]:
    """A dsn whose ``search_path`` is a schema of its own, dropped after the test."""
    schema = f"test_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    separator = "&" if "?" in postgres_dsn else "?"
    yield f"{postgres_dsn}{separator}search_path={schema}"
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()
