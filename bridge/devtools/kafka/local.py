"""A real Apache Kafka broker on 127.0.0.1 without Docker, for development and tests.

``fetch`` resolves ``org.apache.kafka:kafka_2.13`` and a log4j2 backend with Maven into a
per-version cache; ``LocalKafka`` formats a data directory once (single-node KRaft, combined
broker and controller) and runs ``kafka.Kafka`` in its own process group, ready only once a
metadata request succeeds. ``commerce-bridge kafka start|stop`` and the test harness are built on
it.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
import warnings
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TextIO, TypeVar

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from bridge.devtools.kafka.jars import (
    DEFAULT_VERSION,
    LocalKafkaError,
    checked_version,
    fetch,
    find_java,
    last_lines,
)
from bridge.log import get_logger

log = get_logger(__name__)

HOST = "127.0.0.1"
_T = TypeVar("_T")


class BrokerFailed(LocalKafkaError):
    """The broker exited or never became ready; ``log_tail`` holds the end of its log."""

    def __init__(self, reason: str, log_tail: str = "") -> None:
        detail = f"{reason}\n--- end of broker log ---\n{log_tail}" if log_tail else reason
        super().__init__(detail)
        self.reason = reason
        self.log_tail = log_tail


# -- broker settings ----------------------------------------------------------------------------


def new_cluster_id() -> str:
    """What ``kafka-storage random-uuid`` prints: 16 random bytes, base64url, no padding."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):  # Kafka avoids ids that read as a CLI option
            return cluster_id


def free_ports(count: int, host: str = HOST) -> list[int]:
    """``count`` distinct ports the OS has just handed out for ``host``."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the JVM binds
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


@dataclass(frozen=True, slots=True)
class SecureListeners:
    """Extra SASL listeners (SCRAM-SHA-512), as a managed cluster would offer them.

    ``users`` are SCRAM credentials created when the data directory is formatted.
    ``SASL_PLAINTEXT`` listens on ``sasl_port``; with ``tls_pem`` (a PEM file holding an
    unencrypted PKCS#8 key and its certificate) ``SASL_SSL`` listens on ``sasl_ssl_port``.
    The PLAINTEXT listener stays for readiness checks and inter-broker traffic.
    """

    users: Mapping[str, str]
    tls_pem: Path | None = None
    sasl_port: int = 0
    sasl_ssl_port: int = 0


def server_properties(
    *,
    log_dirs: Path,
    port: int,
    controller_port: int,
    partitions: int = 3,
    secure: SecureListeners | None = None,
) -> str:
    """Single-node combined KRaft on 127.0.0.1, static quorum: the ports may change per start."""
    listeners = [f"PLAINTEXT://{HOST}:{port}"]
    protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
    extra: dict[str, str] = {}
    if secure is not None:
        jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        listeners.append(f"SASL_PLAINTEXT://{HOST}:{secure.sasl_port}")
        protocols.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
        extra["sasl.enabled.mechanisms"] = "SCRAM-SHA-512"
        extra["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"] = jaas
        if secure.tls_pem is not None:
            listeners.append(f"SASL_SSL://{HOST}:{secure.sasl_ssl_port}")
            protocols.append("SASL_SSL:SASL_SSL")
            extra["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"] = jaas
            extra["listener.name.sasl_ssl.ssl.keystore.type"] = "PEM"
            extra["listener.name.sasl_ssl.ssl.keystore.location"] = str(secure.tls_pem)
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "listeners": ",".join([*listeners, f"CONTROLLER://{HOST}:{controller_port}"]),
        "advertised.listeners": ",".join(listeners),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": ",".join(protocols),
        **extra,
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "log.dirs": str(log_dirs),
        "num.partitions": str(partitions),
        # Convenient in development; `commerce-bridge topics ensure` still creates the topics
        # explicitly.
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "10",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


# -- running brokers ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunningBroker:
    pid: int
    bootstrap_servers: str


def running_broker(data_dir: str | os.PathLike[str]) -> RunningBroker | None:
    """The broker started from ``data_dir`` if its pid file names a live one; stale files go."""
    folder = Path(data_dir).expanduser().resolve()
    try:
        pid = int((folder / "broker.pid").read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    if not _is_broker_of(pid, folder):
        _clear_state(folder)
        return None
    try:
        bootstrap = (folder / "broker.port").read_text(encoding="utf-8").strip()
    except OSError:
        bootstrap = ""
    return RunningBroker(pid, bootstrap)


def stop_broker(data_dir: str | os.PathLike[str], timeout: float = 30.0) -> RunningBroker | None:
    """Stop the broker started from ``data_dir`` (e.g. with --detach); None if none was running."""
    folder = Path(data_dir).expanduser().resolve()
    running = running_broker(folder)
    if running is None:
        return None
    _terminate(running.pid, lambda: _is_broker_of(running.pid, folder), timeout)
    _clear_state(folder)
    log.info("kafka_stopped", pid=running.pid, data_dir=str(folder))
    return running


def _is_broker_of(pid: int, folder: Path) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else: never ours to judge further
    proc = Path("/proc", str(pid))
    if not proc.is_dir():
        return True  # no procfs (macOS): trust the pid file
    try:
        state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
        argv = (proc / "cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    if state in ("Z", "X"):
        return False  # exited, not yet reaped
    return b"kafka.Kafka" in argv and os.fsencode(folder / "server.properties") in argv


def _terminate(pid: int, alive: Callable[[], bool], timeout: float) -> None:
    """SIGTERM the process group (a clean Kafka shutdown), SIGKILL after ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while alive():
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        else:
            return
        log.warning("kafka_stop_timeout", pid=pid, signal=sig.name, waited=wait)
    raise LocalKafkaError(f"the broker (pid {pid}) did not exit after SIGKILL")


def _clear_state(folder: Path) -> None:
    for name in ("broker.pid", "broker.port"):
        (folder / name).unlink(missing_ok=True)


# -- readiness ----------------------------------------------------------------------------------


async def wait_ready(
    bootstrap_servers: str, *, timeout: float = 60.0, alive: Callable[[], bool] | None = None
) -> dict[str, Any]:
    """Poll until a metadata request lists a broker; return the cluster description.

    Raises LocalKafkaError once ``timeout`` passed or as soon as ``alive()`` turns false.
    """
    host, _, port = bootstrap_servers.split(",")[0].rpartition(":")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: BaseException | None = None
    while alive is None or alive():
        try:
            async with asyncio.timeout(5.0):
                cluster = await _describe_cluster(bootstrap_servers, host, int(port))
            if cluster["brokers"]:
                return cluster
        except (OSError, KafkaError, TimeoutError) as exc:
            last = exc
        if loop.time() >= deadline:
            raise LocalKafkaError(f"not ready after {timeout:.0f}s (last error: {last!r})")
        await asyncio.sleep(0.1)
    raise LocalKafkaError("the broker process exited during start-up")


async def _describe_cluster(bootstrap_servers: str, host: str, port: int) -> dict[str, Any]:
    # A plain connect first: while the port is still closed it fails without client error logs.
    _, writer = await asyncio.open_connection(host, port)
    writer.close()
    await writer.wait_closed()
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id="commerce-bridge-ready",
        request_timeout_ms=5000,
    )
    try:
        await admin.start()
        cluster: dict[str, Any] = await admin.describe_cluster()
        # Consumer groups need a coordinator, which exists once __consumer_offsets does; asking
        # for one creates it, so groups formed right after start-up do not fail and retry.
        await admin.describe_consumer_groups(["commerce-bridge-ready"])
        return cluster
    finally:
        await admin.close()


def _run_blocking(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` on a fresh loop in a worker thread: works whether or not a loop is running."""
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kafka-ready") as pool:
        return pool.submit(asyncio.run, coro).result()


# -- the broker ---------------------------------------------------------------------------------


class LocalKafka:
    """One single-node KRaft broker on 127.0.0.1 whose files all live under ``data_dir``.

    ``start()`` fetches the jars if needed, formats ``data_dir`` once (so a persistent directory
    keeps its topics across restarts), runs ``kafka.Kafka`` in a new process group and returns
    the bootstrap address once a metadata request succeeds. ``stop()`` sends SIGTERM to the group
    and SIGKILL after ``stop_timeout``. ``port=0`` picks a free port. Also a context manager.
    Files: ``server.properties``, ``broker.log`` (INFO), ``broker.out`` (JVM output),
    ``broker.pid``/``broker.port`` while running, ``data/`` (the Kafka log directory).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        port: int = 0,
        version: str = DEFAULT_VERSION,
        partitions: int = 3,
        ready_timeout: float = 60.0,
        stop_timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
        progress: TextIO | None = None,
        secure: SecureListeners | None = None,
    ) -> None:
        self.secure = secure
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.version = checked_version(version)
        self.requested_port = port
        self.partitions = partitions
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.port: int | None = None
        self.controller_port: int | None = None
        self._env = env
        self._progress = progress
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self.port is None:
            raise LocalKafkaError("the broker has not been started")
        return f"{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> str:
        if self._proc is not None:
            raise LocalKafkaError("this broker is already started")
        other = running_broker(self.data_dir)
        if other is not None:
            raise LocalKafkaError(
                f"a broker from {self.data_dir} is already running (pid {other.pid}, "
                f"{other.bootstrap_servers}); stop it with: "
                f"commerce-bridge kafka stop --data-dir {self.data_dir}"
            )
        libs = fetch(self.version, env=self._env, progress=self._progress)
        java = find_java(self._env)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port, self.controller_port = self._choose_ports()
        if self.secure is not None:
            taken = (self.port, self.controller_port)
            sasl_port, sasl_ssl_port = [p for p in free_ports(4) if p not in taken][:2]
            self.secure = SecureListeners(
                self.secure.users, self.secure.tls_pem, sasl_port, sasl_ssl_port
            )
        self._write_config(self.port, self.controller_port)
        self._format(java, libs)
        started = time.monotonic()
        with (self.data_dir / "broker.out").open("ab") as out:
            self._proc = subprocess.Popen(
                [*self._jvm(java, libs), "kafka.Kafka", str(self.data_dir / "server.properties")],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,  # its own process group: stop() signals the whole JVM
            )
        (self.data_dir / "broker.pid").write_text(f"{self._proc.pid}\n", encoding="utf-8")
        (self.data_dir / "broker.port").write_text(f"{self.bootstrap_servers}\n", encoding="utf-8")
        try:
            _run_blocking(
                wait_ready(
                    self.bootstrap_servers, timeout=self.ready_timeout, alive=self.is_running
                )
            )
        except LocalKafkaError as exc:
            tail = self.log_tail()
            self.stop()
            raise BrokerFailed(f"Kafka at {self.bootstrap_servers}: {exc}", tail) from None
        except BaseException:
            self.stop()
            raise
        log.info(
            "kafka_ready",
            bootstrap_servers=self.bootstrap_servers,
            pid=self._proc.pid,
            seconds=round(time.monotonic() - started, 1),
        )
        return self.bootstrap_servers

    def stop(self) -> None:
        """Stop the broker if this object started it; idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            _terminate(proc.pid, lambda: proc.poll() is None, self.stop_timeout)
        _clear_state(self.data_dir)
        log.info("kafka_stopped", pid=proc.pid, exit_code=proc.returncode)

    def release(self) -> int:
        """Leave the broker running beyond this object (``--detach``); return its pid.

        ``stop_broker(data_dir)`` (``commerce-bridge kafka stop``) finds it again through the pid
        file.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            raise LocalKafkaError("the broker has not been started")
        pid = proc.pid
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)  # "still running" is the point
            del proc
        return pid

    def log_tail(self, lines: int = 40) -> str:
        """The end of ``broker.log`` plus any JVM output (e.g. a crash before logging started)."""
        parts = []
        for name, count in (("broker.log", lines), ("broker.out", 10)):
            path = self.data_dir / name
            with contextlib.suppress(OSError):
                with path.open("rb") as handle:
                    handle.seek(max(0, path.stat().st_size - 64 * 1024))
                    text = last_lines(handle.read().decode("utf-8", "replace"), count)
                if text.strip():
                    parts.append(f"[{name}]\n{text}")
        return "\n".join(parts)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _choose_ports(self) -> tuple[int, int]:
        if not self.requested_port:
            port, controller_port = free_ports(2)
            return port, controller_port
        if not port_is_free(self.requested_port):
            raise LocalKafkaError(
                f"{HOST}:{self.requested_port} is already in use; choose another port "
                "(0 picks a free one)"
            )
        return self.requested_port, next(p for p in free_ports(2) if p != self.requested_port)

    def _write_config(self, port: int, controller_port: int) -> None:
        (self.data_dir / "server.properties").write_text(
            server_properties(
                log_dirs=self.data_dir / "data",
                port=port,
                controller_port=controller_port,
                partitions=self.partitions,
                secure=self.secure,
            ),
            encoding="utf-8",
        )
        config = resources.files("bridge").joinpath("data/kafka-log4j2.properties")
        (self.data_dir / "log4j2.properties").write_text(
            config.read_text(encoding="utf-8"), encoding="utf-8"
        )

    def _format(self, java: str, libs: Path) -> None:
        if (self.data_dir / "data" / "meta.properties").is_file():
            return  # formatted before: keep the cluster and its topics
        cluster_id = new_cluster_id()
        command = [
            *self._jvm(java, libs), "kafka.tools.StorageTool", "format",
            "-t", cluster_id, "-c", str(self.data_dir / "server.properties"),
        ]  # fmt: skip
        for user, password in (self.secure.users if self.secure else {}).items():
            command += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise LocalKafkaError(
                f"formatting {self.data_dir / 'data'} failed (exit {done.returncode}):\n"
                f"{last_lines(done.stdout + done.stderr, 20)}"
            )
        log.info("kafka_formatted", data_dir=str(self.data_dir), cluster_id=cluster_id)

    def _jvm(self, java: str, libs: Path) -> list[str]:
        return [
            java, "-Xms256m", "-Xmx512m", "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.data_dir}",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp", f"{libs}{os.sep}*",
        ]  # fmt: skip
