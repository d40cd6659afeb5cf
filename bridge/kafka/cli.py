"""``commerce-bridge topics ensure``: create the bridge's Kafka topics that do not exist yet."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from aiokafka.errors import KafkaError

from bridge import clitools
from bridge.kafka.topics import TopicError, Topics, ensure_topics


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``topics ensure``; it sets ``func(args) -> exit code``."""
    topics = subparsers.add_parser("topics", help="manage the bridge's Kafka topics")
    topic_commands = topics.add_subparsers(dest="topics_command", required=True, metavar="COMMAND")
    ensure = topic_commands.add_parser(
        "ensure",
        parents=[clitools.CONFIG],
        help="create the missing topics",
        description="Create the eight topics under kafka.topic_prefix that do not exist yet "
        "(orders, products, variants, customers, other, commands, deliveries, dlq); existing "
        "topics are left as they are.",
    )
    ensure.add_argument(
        "--partitions",
        type=_positive,
        default=None,
        help="partitions of the topics created now (default: kafka.partitions, 3)",
    )
    ensure.set_defaults(func=topics_ensure)


def topics_ensure(args: argparse.Namespace) -> int:
    cfg = clitools.load(args)
    try:
        created = asyncio.run(
            ensure_topics(
                cfg.kafka, partitions=args.partitions, max_body_bytes=cfg.ingress.max_body_bytes
            )
        )
    except (KafkaError, OSError, TopicError) as exc:
        raise TopicError(f"topics ensure: Kafka at {cfg.kafka.bootstrap_servers}: {exc!r}") from exc
    for name in Topics.from_config(cfg.kafka).all():
        _out(f"{'created' if name in created else 'exists '} {name}")
    return clitools.OK


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (``python -m bridge.kafka.cli``); ``commerce-bridge`` wires
    ``register``."""
    from bridge.log import configure

    parser = argparse.ArgumentParser(prog=clitools.PROG)
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    configure(level="warning")
    return clitools.invoke(args.func, args)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
