"""glibc's mmap threshold stays fixed, so large blocks freed by a long-running process go back."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from bridge import cli, clitools, memory

PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from bridge.memory import fix_mmap_threshold

    class Info(ctypes.Structure):  # struct mallinfo2
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Info
    fixed = fix_mmap_threshold() if sys.argv[1] == "fix" else None
    big = bytearray(16 << 20)  # mmapped, then freed: glibc raises its threshold to 16 MiB ...
    del big
    before = libc.mallinfo2().hblks
    block = bytearray(int(sys.argv[2]))  # ... unless it was fixed: is this block mmapped?
    print(fixed, libc.mallinfo2().hblks - before)
    """
)


def probe(mode: str, size: int) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode, str(size)], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_a_fixed_threshold_keeps_large_blocks_mapped_after_a_larger_one_was_freed() -> None:
    """Without the fix an 8 MiB block comes from the heap (the threshold rose); with it, from
    mmap, so freeing it returns the memory: the dedup table's rebuilds no longer step RSS up."""
    assert "None 0" == probe("as-is", 8 << 20)
    assert "True 1" == probe("fix", 8 << 20)


def test_blocks_the_size_of_kafka_requests_come_from_the_heap() -> None:
    """A 1 MiB block (a produce request being encoded) is not mapped: no mmap, page faults and
    munmap for every copy aiokafka makes of a request."""
    assert "True 0" == probe("fix", 1 << 20)


def test_every_command_fixes_the_threshold_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """``commerce-bridge`` fixes it before it runs a command (here: none, the usage)."""
    calls: list[int] = []

    def fixed() -> bool:
        calls.append(1)
        return True

    monkeypatch.setattr(memory, "fix_mmap_threshold", fixed)
    assert clitools.USAGE == cli.main([])
    assert [1] == calls


SETTLE = textwrap.dedent(
    """
    import gc, sys
    from bridge.memory import settle_heap

    startup = [[n] for n in range(10_000)]  # lives as long as the process
    if sys.argv[1] == "settle":
        settle_heap()
    print(gc.get_threshold()[0], gc.get_freeze_count() >= len(startup))
    """
)


@pytest.mark.parametrize(("mode", "expected"), [("as-is", "700 False"), ("settle", "7000 True")])
def test_settling_freezes_what_lives_and_spaces_young_collections(mode: str, expected: str) -> None:
    """After start-up the services freeze what is alive (full collections no longer walk it) and
    collect young objects every 7,000 allocations: the relay's collections took 650-790 ms of
    its CPU in bench/relay.py's (b), settled 255-300 ms."""
    done = subprocess.run(
        [sys.executable, "-c", SETTLE, mode], capture_output=True, text=True, check=True
    )
    assert expected == done.stdout.strip()
