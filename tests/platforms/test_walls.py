"""Platform facts stay in their packages: no other module of the bridge names a platform.

The check reads every Python file under ``bridge/`` and ``consumers/`` except ``bridge/platforms/``
(the platforms themselves) and ``bridge/devtools/`` (the simulator and ``sign`` stand in for the
platforms), as plain text, case-insensitively: code, strings, comments and docstrings alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge import platforms

ROOT = Path(__file__).parents[2]
SCANNED = ("bridge", "consumers")
EXEMPT = (ROOT / "bridge" / "platforms", ROOT / "bridge" / "devtools")
# Platform names that are ordinary words ("uvicorn[standard]"): their titles and headers count.
ORDINARY_NAMES = frozenset({"standard"})
# Target fields every platform may share, naming none of them.
NEUTRAL_FIELDS = frozenset({"variant"})


def platform_words() -> set[str]:
    """Names, titles, secret headers and specific target fields of every registered platform."""
    words: set[str] = set()
    for name in platforms.names():
        plugin = platforms.get(name)
        if name not in ORDINARY_NAMES:
            words.add(name)
        words.add(plugin.title.lower())
        words |= plugin.secret_headers
        words |= {f.name for f in plugin.targets.fields if f.name not in NEUTRAL_FIELDS}
    return words


def sources() -> list[Path]:
    found = [p for d in SCANNED for p in sorted((ROOT / d).rglob("*.py"))]
    return [p for p in found if not any(p.is_relative_to(e) for e in EXEMPT)]


def naming(text: str, words: set[str]) -> list[str]:
    """``line: word`` for every line of ``text`` that names one of ``words``."""
    hits = []
    for number, line in enumerate(text.lower().splitlines(), 1):
        hits += [f"{number}: {word}" for word in sorted(words) if word in line]
    return hits


def test_the_words_cover_the_built_in_platforms() -> None:
    """The scan looks for each built-in platform by name, title or header."""
    words = platform_words()
    expected = {"cyberbiz", "bentoweb", "standard webhooks", "x-webhook-token", "webhook-signature"}
    assert expected == expected & words


def test_the_scan_finds_a_platform_name() -> None:
    """The matcher sees a name in code and in a comment, in any case."""
    text = 'HEADER = "X-Cyberbiz-Event"\n# BentoWeb sends no id\nx = 1\n'
    assert ["1: cyberbiz", "2: bentoweb"] == naming(text, platform_words())


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_names_no_platform(path: Path) -> None:
    """Outside bridge/platforms/ and bridge/devtools/, a module names no platform."""
    assert [] == naming(path.read_text(encoding="utf-8"), platform_words())
