"""Customer PII in ``raw`` payloads: encrypted, redacted or passed through (``privacy.mode``).

Platform modules declare *where* PII sits as dotted paths; this module decides *what* happens to
it. Path syntax: keys separated by dots; ``*`` matches every key of an object or every element of
a list; a decimal segment also indexes a list. Paths that are absent are skipped. A path may also
be given pre-split as a tuple of segments, for keys that themselves contain dots.

Encrypted values are ``enc:v1:<key id>:<base64url(nonce ‖ ciphertext)>`` (AES-GCM, 12-byte
nonce, the ``enc:v1:<key id>`` prefix bound as associated data). The plaintext is the JSON
encoding (orjson) of the value, *also for strings*, so that :meth:`Privacy.decrypt` restores the
exact type: ``"123"`` and ``123`` stay distinguishable.

Nonces: each process draws a random 96-bit starting point once (again in a forked child) and
counts up from it, so no nonce repeats within a process and two processes collide only if their
ranges overlap — less likely than with a fresh random nonce per value, and without a
``getrandom`` system call per PII field (which cost more than the encryption itself).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bridge.errors import BridgeError, ConfigError, InvalidPayload
from bridge.settings import PrivacyConfig

TOKEN_PREFIX = "enc:v1:"  # noqa: S105 - the ciphertext format's prefix, not a secret
REDACTED = "[redacted]"
NONCE_BYTES = 12

Path = tuple[str, ...]
PiiPath = str | Path

_NONCE_MASK = (1 << (8 * NONCE_BYTES)) - 1


class _Nonces:
    """Unique 12-byte nonces: a random start per process, counting up (mod 2^96)."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self._count = itertools.count(int.from_bytes(os.urandom(NONCE_BYTES), "big"))

    def next(self) -> bytes:
        return (next(self._count) & _NONCE_MASK).to_bytes(NONCE_BYTES, "big")


_nonces = _Nonces()


class DecryptionError(BridgeError):
    """A token cannot be decrypted: malformed, unknown key id, or tampered with."""


def key_id(secret: bytes) -> str:
    """Short alphanumeric id of a key: the first 8 hex characters of its SHA-256."""
    return hashlib.sha256(secret).hexdigest()[:8]


@lru_cache(maxsize=1024)
def _split(path: str) -> Path:
    segments = tuple(path.split("."))
    if not path or any(not s for s in segments):
        raise ValueError(f"invalid PII path {path!r}")
    return segments


def compile_path(path: PiiPath) -> Path:
    """``"data.order.email"`` → ``("data", "order", "email")``; tuples are taken as they are."""
    return path if isinstance(path, tuple) else _split(path)


_CONTAINERS = (str, list, dict)


def transform_paths(payload: Any, paths: Sequence[PiiPath], fn: Callable[[Any], Any]) -> Any:
    """A copy of ``payload`` with ``fn`` applied to the value at every path.

    Copy-on-write: containers on a path where a value changed are copied, everything else is
    shared with the input, which is never mutated. A value is transformed at most once per path.
    Paths that no value can match twice (the usual case) are applied in one walk over a trie of
    them, each container copied at most once; overlapping ones are applied one after another.
    """
    trie = _compile(tuple(paths))
    if trie is None:
        result = payload
        for path in paths:
            result = _apply(result, compile_path(path), fn)
        return result
    return _walk(payload, trie, fn)


class _Trie:
    """Paths sharing a prefix, one node per segment: what to do under each key of a container.

    ``keys``: (segment, rest) for literal segments; ``stars``: the rest under ``*``, if any. A
    rest of ``None`` means the path ends there: apply ``fn``.
    """

    __slots__ = ("children", "keys", "stars")

    def __init__(self) -> None:
        self.children: dict[str, _Trie | None] = {}
        self.keys: tuple[tuple[str, _Trie | None], ...] = ()
        self.stars: list[_Trie | None] = []

    def seal(self) -> None:
        """Freeze ``children`` into what the walk reads."""
        self.keys = tuple((k, sub) for k, sub in self.children.items() if k != "*")
        self.stars = [self.children["*"]] if "*" in self.children else []
        for sub in self.children.values():
            if sub is not None:
                sub.seal()


@lru_cache(maxsize=256)
def _compile(paths: tuple[PiiPath, ...]) -> _Trie | None:
    """The trie of ``paths``, or None when two of them can reach the same value (or one the
    other's ancestor): then the order they are applied in matters."""
    split = [compile_path(p) for p in paths]
    for i, a in enumerate(split):
        for b in split[i + 1 :]:
            if all(_may_meet(x, y) for x, y in zip(a, b, strict=False)):
                return None
    root = _Trie()
    for segments in split:
        node = root
        for segment in segments[:-1]:
            child = node.children.setdefault(segment, _Trie())
            if child is None:  # cannot happen: no path ends above another (checked above)
                return None
            node = child
        node.children[segments[-1]] = None
    root.seal()
    return root


def _may_meet(x: str, y: str) -> bool:
    """Whether two segments can select the same key or index ("0" and "00" index alike)."""
    return x == y or "*" in (x, y) or (x.isdecimal() and y.isdecimal() and int(x) == int(y))


def _walk(node: Any, trie: _Trie, fn: Callable[[Any], Any]) -> Any:
    if isinstance(node, dict):
        if trie.stars:
            return _walk_star(node, trie, fn)
        copy: dict[str, Any] | None = None
        for key, sub in trie.keys:
            if key in node:
                old = node[key]
                new = fn(old) if sub is None else _walk(old, sub, fn)
                if new is not old:
                    if copy is None:
                        copy = dict(node)
                    copy[key] = new
        return node if copy is None else copy
    if isinstance(node, list):
        return _walk_star(node, trie, fn)
    return node


def _walk_star(node: dict[str, Any] | list[Any], trie: _Trie, fn: Callable[[Any], Any]) -> Any:
    """The general case: a ``*`` child, or a list (decimal segments index it)."""
    copy: Any = None
    for key, subs in _matches(node, trie):
        old = new = node[key]
        for sub in subs:
            new = fn(new) if sub is None else _walk(new, sub, fn)
        if new is not old:
            if copy is None:
                copy = dict(node) if isinstance(node, dict) else list(node)
            copy[key] = new
    return node if copy is None else copy


def _matches(node: dict[str, Any] | list[Any], trie: _Trie) -> list[tuple[Any, list[_Trie | None]]]:
    """(key or index, the sub-tries to apply there, in order) for a container node."""
    star = trie.stars
    if isinstance(node, dict):
        if star:
            extra = trie.children
            return [(k, [*star, *([extra[k]] if k in extra and k != "*" else [])]) for k in node]
        return [(k, [sub]) for k, sub in trie.keys if k in node]
    indexed: dict[int, list[_Trie | None]] = {}
    for k, sub in trie.keys:
        if k.isdecimal() and int(k) < len(node):
            indexed.setdefault(int(k), []).append(sub)
    if star:
        return [(i, [*star, *indexed.get(i, [])]) for i in range(len(node))]
    return sorted(indexed.items())


def _apply(node: Any, segments: Path, fn: Callable[[Any], Any]) -> Any:
    if not segments:
        return fn(node)
    head, rest = segments[0], segments[1:]
    if isinstance(node, dict):
        keys = list(node) if head == "*" else ([head] if head in node else [])
        if not keys:
            return node
        copy = dict(node)
        for key in keys:
            copy[key] = _apply(node[key], rest, fn)
        return copy
    if isinstance(node, list):
        if head == "*":
            indexes = range(len(node))
        elif head.isdecimal() and int(head) < len(node):
            indexes = range(int(head), int(head) + 1)
        else:
            return node
        items = list(node)
        for i in indexes:
            items[i] = _apply(node[i], rest, fn)
        return items
    return node


class Privacy:
    """Applies ``privacy.mode`` to the PII paths of a payload; decrypts with any known key."""

    def __init__(self, cfg: PrivacyConfig) -> None:
        self.mode = cfg.mode
        self._ciphers: dict[str, AESGCM] = {}
        for kid, secret in cfg.keys.items():
            if len(secret) not in (16, 24, 32):
                raise ConfigError("privacy.key", f"key {kid!r} must be 16, 24 or 32 bytes")
            self._ciphers[kid] = AESGCM(secret)
        self._active = cfg.active_key_id
        if self.mode == "encrypt" and (self._active is None or self._active not in self._ciphers):
            raise ConfigError(
                "privacy.key", "mode 'encrypt' needs a key (e.g. key = 'env:BRIDGE_PII_KEY')"
            )
        self._sealer: tuple[AESGCM, str, bytes] | None = None  # cipher, "enc:v1:<kid>:", AD
        if self._active is not None and self._active in self._ciphers:
            header = f"{TOKEN_PREFIX}{self._active}"
            self._sealer = (self._ciphers[self._active], f"{header}:", header.encode())
        self._protect_one: Callable[[Any], Any] = _redact_unless_empty
        self._seal: Callable[[Any], Any] | None = None
        if self._sealer is not None:
            self._seal = _sealing(self._sealer, keep_empty=False)
            if self.mode == "encrypt":
                self._protect_one = _sealing(self._sealer, keep_empty=True)

    # -- protecting ---------------------------------------------------------------------------

    def protect(self, payload: Any, pii_paths: Sequence[PiiPath]) -> Any:
        """A new structure with every value at a PII path encrypted/redacted; input untouched.

        ``None`` and empty strings, lists and objects stay as they are in every mode: there is
        nothing to hide, and "no e-mail given" remains visible.
        """
        if self.mode == "passthrough" or not pii_paths:
            return payload
        return transform_paths(payload, pii_paths, self._protect_one)

    def encrypt(self, value: Any) -> str:
        """``enc:v1:<kid>:<b64url>`` of the JSON encoding of ``value`` under the active key."""
        if self._seal is None:
            raise ConfigError("privacy.key", "no active key to encrypt with")
        token: str = self._seal(value)
        return token

    # -- revealing ----------------------------------------------------------------------------

    def decrypt(self, token: str) -> Any:
        """The original value of a token produced by :meth:`encrypt` with any configured key."""
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX):
            raise DecryptionError("not an enc:v1 token")
        kid, sep, data = token[len(TOKEN_PREFIX) :].partition(":")
        if not sep or not kid:
            raise DecryptionError("malformed enc:v1 token: expected enc:v1:<key id>:<data>")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise DecryptionError(f"unknown key id {kid!r}: add the key to privacy.old_keys")
        try:
            blob = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        except (binascii.Error, ValueError):
            raise DecryptionError("malformed enc:v1 token: data is not base64url") from None
        if len(blob) < NONCE_BYTES + 16:
            raise DecryptionError("malformed enc:v1 token: too short")
        header = f"{TOKEN_PREFIX}{kid}".encode()
        try:
            plain = cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], header)
        except InvalidTag:
            raise DecryptionError(f"token does not authenticate under key {kid!r}") from None
        return orjson.loads(plain)

    def reveal(self, payload: Any) -> Any:
        """A copy of ``payload`` with every ``enc:v1`` token string replaced by its value."""
        if isinstance(payload, str) and payload.startswith(TOKEN_PREFIX):
            return self.reveal(self.decrypt(payload))
        if isinstance(payload, Mapping):
            return {k: self.reveal(v) for k, v in payload.items()}
        if isinstance(payload, list):
            return [self.reveal(v) for v in payload]
        return payload


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _sealing(sealer: tuple[AESGCM, str, bytes], *, keep_empty: bool) -> Callable[[Any], Any]:
    """``enc:v1:<kid>:<b64url>`` of one value under ``sealer``, with everything it needs bound once
    (it runs for every PII field of every webhook); ``keep_empty``: ``None`` and empty strings,
    lists and objects stay as they are (what ``protect`` does)."""
    encrypt = sealer[0].encrypt
    prefix, associated = sealer[1], sealer[2]
    nonce_of, dumps, b2a = _nonces.next, orjson.dumps, binascii.b2a_base64
    urlsafe, containers = _URLSAFE, _CONTAINERS

    def seal(value: Any) -> Any:
        if keep_empty and (value is None or (isinstance(value, containers) and not value)):
            return value
        try:
            plain = dumps(value)
        except TypeError:
            plain = _dumps(value)  # raises InvalidPayload
        nonce = nonce_of()
        data = b2a(nonce + encrypt(nonce, plain, associated), newline=False).translate(urlsafe)
        return prefix + data.rstrip(b"=").decode()

    return seal


def _redact_unless_empty(value: Any) -> Any:
    return value if value is None or (isinstance(value, _CONTAINERS) and not value) else REDACTED


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError as exc:  # orjson.JSONEncodeError: ints over 64 bits, non-JSON types
        raise InvalidPayload(f"cannot encrypt a value that is not JSON: {exc}") from None
