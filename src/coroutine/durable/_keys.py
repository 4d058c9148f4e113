"""The keys that sign durable states and the transform that seals them: this process's settings.

Keys rotate. The settings hold a list of keys: the first signs every state written from now
on, and a state is read if any key listed verifies it, so a fleet can move to a new key in
two deployments (first list the new key second, then first) without refusing a state in
flight. A key given to one call (``inspect(b, key=...)``) is used alone for that call.

A key is used as given, hashed to 32 bytes: it is not stretched, so it must be a random
secret, not a passphrase. Every state is a known-plaintext sample of the MAC, so a short or
guessable key could be searched for offline from one stored state; keys shorter than
`MIN_KEY` bytes are refused (``secrets.token_urlsafe(32)`` makes a good one).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from hashlib import blake2b
from typing import Any, Protocol

__all__ = ["MIN_KEY", "TAG", "Transform", "configure", "hasher", "keys_for"]

MIN_KEY = 16
"""The fewest bytes a key may hold (UTF-8 for a str): 128 bits, if it is random."""

TAG = 16  # bytes of a state's tag (its MAC, or its checksum)


class Transform(Protocol):
    """Seals the parts of states (encryption, say), and opens them again.

    ``open(seal(b)) == b``; `open` raises any exception for bytes it cannot open, which
    should include bytes it did not seal (an authenticated cipher, as Fernet is).
    """

    def seal(self, data: bytes, /) -> bytes:
        """The sealed form of one part of a state (`Marshal` calls it as it writes).

        >>> FernetTransform(Fernet.generate_key()).seal(b"part")  # doctest: +SKIP
        b'gAAAAAB...'
        """
        ...

    def open(self, data: bytes, /) -> bytes:
        """The part `seal` sealed (`Unmarshal`, `inspect`); raise for anything else.

        An `Exception` it raises becomes `InvalidStateError`; the bytes it returns are then
        read as untrusted as any (bounded, checked), so a transform need not check them.
        """
        ...


class _Settings:
    # Invariant: keys are MAC keys derived by `_derive`, the one that signs first; () for no
    # key (states then carry a plain checksum). transform is None or has seal and open.
    keys: tuple[bytes, ...] = ()
    transform: Transform | None = None


def _derive(key: object) -> bytes:
    """The MAC key of the user's `key`; ValueError if it is too short."""
    if isinstance(key, str):
        raw = key.encode("utf-8", "surrogatepass")
    elif isinstance(key, (bytes, bytearray, memoryview)):
        raw = bytes(key)
    else:
        raise TypeError(f"a state key is a str or bytes, got {type(key).__name__}")
    if len(raw) < MIN_KEY:
        raise ValueError(
            f"a state key must hold at least {MIN_KEY} bytes, this one holds {len(raw)}: use "
            "a random secret, such as secrets.token_urlsafe(32) (keys are not stretched, so "
            "a short or guessable key can be found from one stored state)"
        )
    return blake2b(raw, digest_size=32, person=b"coroutine.key").digest()


def _derive_all(key: Any) -> tuple[bytes, ...]:
    """The MAC keys of a key or a list of keys (the one that signs first)."""
    if isinstance(key, (str, bytes, bytearray, memoryview)):
        return (_derive(key),)
    if not isinstance(key, Sequence) or not key:
        raise TypeError(
            f"key= takes a key (str or bytes), a non-empty list of keys (the first signs, "
            f"every one reads), or None; got {key!r}"
        )
    return tuple(_derive(k) for k in key)


_UNSET: Any = object()


def configure(
    *,
    key: bytes | str | Sequence[bytes | str] | None = _UNSET,
    transform: Transform | None = _UNSET,
) -> None:
    """Set, for this process, the keys that sign durable states and the transform that seals them.

    Args:
        key: a key, or a list of keys. The first signs every state written from now on
            with a keyed MAC (BLAKE2b), checked before anything in a state but its format
            bytes is read; a state is read if any key listed verifies it (rotation: list
            the new key second on every process, then first, then drop the old one once no
            state signed with it remains; a delta extends its state under the key that
            state was signed with). Unsigned states, and states no listed key verifies, are
            refused. A key is a random secret of at least 16 bytes, used as given (not
            stretched): ``secrets.token_urlsafe(32)``. None: no key (states carry a
            checksum, which catches accidents, not forgeries). Default:
            ``COROUTINE_STATE_KEY`` (keys separated by commas, the signing one first).
        transform: an object with ``seal(bytes) -> bytes`` and ``open(bytes) -> bytes``
            (`FernetTransform`, say) applied to every state's parts, so that sent values
            and results are not stored in clear; then unsealed states are refused. The
            MAC covers the sealed bytes. None: no transform.

    Omitted arguments keep their setting; nothing is changed if either is refused. A key
    only authenticates: without a transform, a state's values are readable by whoever
    holds its bytes (see "Threat model" in docs/how-to/durable.md).

    >>> import secrets
    >>> from coroutine.durable import configure
    >>> new, old = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    >>> configure(key=[new, old])  # writes under new, reads under either
    >>> configure(key=None)

    Raises:
        TypeError: `transform` lacks ``seal`` or ``open``; `key` is not a str, bytes, or a
            non-empty list of them.
        ValueError: a key is shorter than 16 bytes.
    """
    keys = _Settings.keys if key is _UNSET else () if key is None else _derive_all(key)
    if transform is not _UNSET and transform is not None:
        if not (
            callable(getattr(transform, "seal", None))
            and callable(getattr(transform, "open", None))
        ):
            raise TypeError(
                "transform must have seal(bytes) -> bytes and open(bytes) -> bytes, got "
                f"{transform!r}"
            )
    _Settings.keys = keys  # both checked: now set both
    if transform is not _UNSET:
        _Settings.transform = transform


def keys_for(key: Any) -> tuple[bytes, ...]:
    """The MAC keys to read with: those of `key` alone if given, else the configured ones."""
    return _Settings.keys if key is None else _derive_all(key)


def hasher(key: bytes | None) -> Any:
    """A fresh hash of a state's bytes: keyed BLAKE2b (a MAC), or a checksum without a key."""
    return blake2b(digest_size=TAG, key=key or b"", person=b"coroutine.state")


def _from_environment() -> None:
    """Read ``COROUTINE_STATE_KEY``: a key, or keys separated by commas, the signing one first."""
    value = os.environ.get("COROUTINE_STATE_KEY")
    if not value:
        return
    try:
        configure(key=value.split(","))
    except ValueError as exc:
        raise ValueError(f"COROUTINE_STATE_KEY: {exc}") from None


_from_environment()
