"""``commerce-bridge kafka start|stop``: a local Apache Kafka broker for development and tests."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

from bridge import clitools
from bridge.devtools.kafka.jars import DEFAULT_VERSION, LocalKafkaError
from bridge.devtools.kafka.local import LocalKafka, running_broker, stop_broker

DEFAULT_PORT = 9092  # bridge.toml's default kafka.bootstrap_servers is 127.0.0.1:9092


def default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/commerce-bridge/kafka``, else ``~/.local/state/commerce-bridge/kafka``."""
    env = os.environ if env is None else env
    base = (
        Path(env["XDG_STATE_HOME"])
        if env.get("XDG_STATE_HOME")
        else Path.home() / ".local" / "state"
    )
    return base / "commerce-bridge" / "kafka"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``kafka start|stop``; each sets ``func(args) -> exit code``."""
    kafka = subparsers.add_parser(
        "kafka",
        help="run a local Apache Kafka broker (development, tests)",
        description="A single-node Apache Kafka broker on 127.0.0.1, no Docker: needs Java 17+, "
        "and Maven the first time (the jars are then cached under ~/.cache/commerce-bridge/kafka, "
        "or $BRIDGE_KAFKA_CACHE).",
    )
    kafka_commands = kafka.add_subparsers(dest="kafka_command", required=True, metavar="COMMAND")
    data_dir_help = (
        "broker state; topics and records survive restarts "
        f"(default: {default_data_dir()}, i.e. $XDG_STATE_HOME/commerce-bridge/kafka)"
    )

    start = kafka_commands.add_parser(
        "start",
        help="start the broker and wait until it is ready",
        description="Fetch the broker jars if needed, format the data directory once, start the "
        "broker and print 'kafka ready at 127.0.0.1:PORT' once it answers metadata requests. "
        "In the foreground by default: SIGTERM or Ctrl-C stops the broker cleanly.",
    )
    start.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"broker port on 127.0.0.1 (default: {DEFAULT_PORT}; 0 picks a free port)",
    )
    start.add_argument("--data-dir", type=Path, default=None, help=data_dir_help)
    start.add_argument(
        "--detach",
        action="store_true",
        help="return once ready and leave the broker running "
        "(stop it with `commerce-bridge kafka stop`)",
    )
    start.add_argument(
        "--version",
        dest="kafka_version",
        default=DEFAULT_VERSION,
        metavar="V",
        help=f"Apache Kafka version from Maven Central (default: {DEFAULT_VERSION})",
    )
    start.set_defaults(func=kafka_start)

    stop = kafka_commands.add_parser(
        "stop", help="stop a broker started with --detach", description="Stop the local broker "
        "started from the data directory (SIGTERM, SIGKILL after 30 s). Nothing running is fine."
    )  # fmt: skip
    stop.add_argument("--data-dir", type=Path, default=None, help=data_dir_help)
    stop.set_defaults(func=kafka_stop)


def kafka_start(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir or default_data_dir()
    broker = LocalKafka(data_dir, port=args.port, version=args.kafka_version, progress=sys.stderr)
    if not args.detach:
        return _run_in_foreground(broker)
    running = running_broker(broker.data_dir)
    if running is not None:
        _out(f"kafka ready at {running.bootstrap_servers} (already running, pid {running.pid})")
        return 0
    try:
        bootstrap = broker.start()
    except LocalKafkaError as exc:
        raise LocalKafkaError(f"kafka start: {exc}") from exc
    pid = broker.release()
    _out(f"kafka ready at {bootstrap}")
    stop = f"commerce-bridge kafka stop{_dir_option(args)}"
    _err(f"broker pid {pid}, log {broker.log_path}; stop it with: {stop}")
    return 0


def _run_in_foreground(broker: LocalKafka) -> int:
    stopping = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    # Installed before starting: a SIGTERM during start-up still stops the broker.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            bootstrap = broker.start()
        except LocalKafkaError as exc:
            raise LocalKafkaError(f"kafka start: {exc}") from exc
        _out(f"kafka ready at {bootstrap}")
        _err(f"broker log: {broker.log_path}; Ctrl-C stops the broker")
        while not stopping.wait(0.5):
            if not broker.is_running():
                _err(broker.log_tail())
                raise LocalKafkaError("kafka start: the broker exited unexpectedly (log above)")
        return 0
    finally:
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def kafka_stop(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir or default_data_dir()
    try:
        stopped = stop_broker(data_dir)
    except LocalKafkaError as exc:
        raise LocalKafkaError(f"kafka stop: {exc}") from exc
    if stopped is None:
        _out(f"no local kafka running from {data_dir}")
    else:
        _out(f"kafka stopped (pid {stopped.pid}, {stopped.bootstrap_servers})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (``python -m bridge.devtools.kafka.cli``); ``commerce-bridge``
    wires ``register``."""
    from bridge.log import configure

    parser = argparse.ArgumentParser(prog=clitools.PROG)
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    configure(level="warning")
    return clitools.invoke(args.func, args)


def _dir_option(args: argparse.Namespace) -> str:
    return "" if args.data_dir is None else f" --data-dir {args.data_dir}"


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text}")
    return value


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
