"""`FernetTransform`: durable states encrypted and authenticated by Fernet (``crypto`` extra)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["FernetTransform"]

_NEEDS = "FernetTransform needs the cryptography package: pip install 'stackful-coroutines[crypto]'"


class FernetTransform:
    """Seal durable states with Fernet: encrypted (AES-128-CBC) and authenticated (HMAC-SHA256).

    Give it to ``coroutine.durable.configure(transform=...)``: the header, the events and
    the position of every state written are sealed, and a state that this transform did
    not seal is refused. `key` is a Fernet key (`generate_key`) or a list of them: the
    first seals, and any of them opens (rotation, as for state keys). Each sealed part
    carries the second it was sealed at, in clear (Fernet's token format).

    A transform protects each part, not how parts are put together: without a state key,
    parts of genuine states sealed under one Fernet key can be recombined into a state
    whose checksum is recomputed. Set a state key too (`configure(key=...)`).

    Needs the ``cryptography`` package (``pip install 'stackful-coroutines[crypto]'``).

    >>> from coroutine.durable import FernetTransform
    >>> transform = FernetTransform(FernetTransform.generate_key())
    >>> transform.open(transform.seal(b"account 4111")) == b"account 4111"
    True

    Raises:
        ImportError: ``cryptography`` is not installed.
        ValueError: a key is not a Fernet key (32 url-safe base64-encoded bytes), or the
            list is empty.
    """

    __slots__ = ("_fernet", "_keys")

    def __init__(self, key: bytes | str | Sequence[bytes | str]) -> None:
        fernet, multi = _cryptography()
        keys = [key] if isinstance(key, (bytes, str)) else list(key)
        if not keys:
            raise ValueError("FernetTransform takes a key or a non-empty list of keys")
        self._keys = tuple(keys)
        self._fernet = multi([fernet(k) for k in keys])

    @staticmethod
    def generate_key() -> bytes:
        """A new random Fernet key (keep it secret, and keep it: states need it to open)."""
        fernet, _ = _cryptography()
        key: bytes = fernet.generate_key()
        return key

    def seal(self, data: bytes, /) -> bytes:
        """`data` encrypted and authenticated under the first key."""
        token: bytes = self._fernet.encrypt(data)
        return token

    def open(self, data: bytes, /) -> bytes:
        """What `seal` sealed under any of the keys; ``cryptography``'s ``InvalidToken`` for
        anything else (the durable layer refuses the state with `InvalidStateError`)."""
        opened: bytes = self._fernet.decrypt(data)
        return opened

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with its keys (for replay_elsewhere's child): a secret, like the object.
        return (FernetTransform, (list(self._keys),))

    def __repr__(self) -> str:
        return f"<FernetTransform with {len(self._keys)} key(s)>"


def _cryptography() -> tuple[Any, Any]:
    """cryptography's Fernet and MultiFernet, imported when first needed."""
    try:
        from cryptography.fernet import Fernet, MultiFernet
    except ImportError:
        raise ImportError(_NEEDS) from None
    return Fernet, MultiFernet
