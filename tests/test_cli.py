"""`commerce-bridge`: one parser from the command registry, one --config, one exit-code map."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge import cli, clitools
from bridge.errors import BridgeError, ConfigError, UsageError
from bridge.outbox.store import OutboxError

# Every leaf command, and whether it reads bridge.toml (pinned: a new command must be listed).
COMMANDS: dict[tuple[str, ...], bool] = {
    ("config", "check"): True,
    ("dev",): False,
    ("ingress",): True,
    ("topics", "ensure"): True,
    ("kafka", "start"): False,
    ("kafka", "stop"): False,
    ("sign",): True,
    ("simulate",): True,
    ("outbox", "list"): True,
    ("outbox", "retry"): True,
    ("outbox", "purge"): True,
    ("relay",): True,
    ("consume", "commands"): True,
    ("consume", "inventory-sync"): True,
    ("sync-groups", "show"): True,
    ("sync-groups", "set"): True,
    ("sync-groups", "pull"): True,
}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def leaf_commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    children = _subparsers(parser)
    if not children:
        return [path]
    return [leaf for name, sub in children.items() for leaf in leaf_commands(sub, (*path, name))]


def run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BRIDGE_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "bridge", "--log-level", "warning", *argv],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("BRIDGE_OUTBOX_DSN", raising=False)
    path = tmp_path / "bridge.toml"
    dsn = f"sqlite:///{tmp_path / 'outbox.db'}"
    path.write_text(f'[outbox]\ndsn = "{dsn}"\n\n[privacy]\nmode = "passthrough"\n')
    return path


def test_the_registry_builds_every_command() -> None:
    """The parser offers exactly the pinned commands, all from COMMAND_MODULES."""
    assert sorted(COMMANDS) == sorted(leaf_commands(cli.build_parser()))


def test_top_level_help_lists_every_command_with_a_line_of_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`commerce-bridge --help` names each command with its one-line help."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    text = capsys.readouterr().out
    top = _subparsers(cli.build_parser())
    helps = {action.dest: action.help for action in _top_choices(cli.build_parser())}
    assert 0 == exit_info.value.code
    assert sorted(top) == sorted(helps)
    assert [] == [name for name, line in helps.items() if not line or f"{name}  " not in text]


def _top_choices(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action._choices_actions)
    return []


@pytest.mark.parametrize("command", sorted(COMMANDS), ids=" ".join)
def test_every_command_has_help(
    command: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    """`--help` exits 0 for every command and shows --config exactly where it reads config."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command, "--help"])
    text = capsys.readouterr().out
    assert (0, COMMANDS[command]) == (exit_info.value.code, "--config FILE" in text)


@pytest.mark.parametrize(
    "command", sorted(c for c, reads in COMMANDS.items() if reads), ids=" ".join
)
def test_config_help_is_the_shared_text(
    command: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    """Every command reading bridge.toml documents --config with the one shared text (the
    simulator's demo default aside)."""
    with pytest.raises(SystemExit):
        cli.main([*command, "--help"])
    flat = " ".join(capsys.readouterr().out.split())
    expected = "a demo set of shops" if command == ("simulate",) else clitools.CONFIG_HELP
    assert expected in flat


def test_help_texts_name_only_files_in_the_repository(capsys: pytest.CaptureFixture[str]) -> None:
    """No help text points at a document outside the repository (ARCHITECTURE, §N)."""
    texts = []
    for command in [(), *COMMANDS]:
        with pytest.raises(SystemExit):
            cli.main([*command, "--help"])
        texts.append(capsys.readouterr().out)
    assert [] == [t for t in texts if "ARCHITECTURE" in t or "§" in t]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("kafka.partitions", "must be at least 1"), 2),
        (UsageError("retry: --shop applies only with --all-dead"), 2),
        (OutboxError("row 3 not retried"), 1),
        (BridgeError("anything else we raise on purpose"), 1),
    ],
)
def test_exit_code_map(error: BridgeError, code: int, capsys: pytest.CaptureFixture[str]) -> None:
    """invoke maps each error class to its exit code and prints one commerce-bridge: line."""

    def failing(_args: argparse.Namespace) -> int:
        raise error

    assert code == clitools.invoke(failing, argparse.Namespace())
    lines = capsys.readouterr().err.splitlines()
    assert (1, True) == (len(lines), lines[0].startswith("commerce-bridge: "))


def test_a_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    """A configuration error is one line naming the key, exit 2, no traceback."""
    path = tmp_path / "bridge.toml"
    path.write_text('[kafka]\npartitions = 0\n[privacy]\nmode = "passthrough"\n')
    done = run("config", "check", "--config", str(path), cwd=tmp_path)
    lines = done.stderr.splitlines()
    prefix = "commerce-bridge: configuration error: kafka.partitions: "
    assert (2, 1, True) == (done.returncode, len(lines), lines[0].startswith(prefix))


def test_a_missing_config_file_exits_2(tmp_path: Path) -> None:
    """A --config naming no file is a configuration error (2) naming --config."""
    done = run("outbox", "list", "--config", str(tmp_path / "nope.toml"), cwd=tmp_path)
    expected = f"commerce-bridge: configuration error: --config: file '{tmp_path}/nope.toml' does not exist"
    assert (2, [expected]) == (done.returncode, done.stderr.splitlines())


def test_a_failed_operation_exits_1(config: Path, tmp_path: Path) -> None:
    """Retrying a row that does not exist is an operation failure: exit 1, one line."""
    done = run("outbox", "retry", "99", "--config", str(config), cwd=tmp_path)
    expected = "commerce-bridge: outbox retry: row 99 not retried: no such row"
    assert (1, [expected]) == (done.returncode, done.stderr.splitlines())


def test_a_usage_error_of_a_command_exits_2(config: Path, tmp_path: Path) -> None:
    """A combination argparse cannot refuse is still a usage error: exit 2."""
    done = run("outbox", "retry", "3", "--shop", "a", "--config", str(config), cwd=tmp_path)
    expected = "commerce-bridge: outbox retry: --shop applies only with --all-dead"
    assert (2, [expected]) == (done.returncode, done.stderr.splitlines())


@pytest.mark.parametrize("before", [True, False], ids=["before", "after"])
def test_config_before_or_after_the_command(config: Path, tmp_path: Path, before: bool) -> None:
    """`--config F outbox list` and `outbox list --config F` read the same file: exit 0."""
    option = ["--config", str(config)]
    argv = [*option, "outbox", "list"] if before else ["outbox", "list", *option]
    done = run(*argv, cwd=tmp_path)
    assert (0, "no rows\n", "") == (done.returncode, done.stdout, done.stderr)


def test_bridge_config_is_the_default(config: Path, tmp_path: Path) -> None:
    """Without --config, $BRIDGE_CONFIG names the file."""
    env = {**os.environ, "BRIDGE_CONFIG": str(config)}
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "config", "check"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert (0, True) == (done.returncode, done.stdout.startswith(f"{config}: ok"))
