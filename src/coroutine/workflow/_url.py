"""Store URLs: parsed strictly, then opened; the one module that knows every backend.

A store is named by a URL, as SQLAlchemy names databases:

* ``sqlite:///relative/path.db`` (three slashes: relative to the working directory) and
  ``sqlite:////absolute/path.db`` (four: absolute);
* ``redis://host:port/db`` (``rediss://`` for TLS), ``db`` a number, 0 when left out;
* ``postgresql://user@host:port/dbname`` (or ``postgres://``), with any connection
  parameter libpq knows (``?sslmode=require``).

Each may carry ``prefix=NAME`` in its query, naming the tables (or keys) of one engine so
that several share one database. Anything else is refused with `StoreURLError` before a
connection is made: a misspelt parameter is an error, never a silent default. Each backend
is imported only when a URL names it, so ``import coroutine.workflow`` never imports redis
or psycopg, and the store contract (`_store`) imports no backend.
"""

from __future__ import annotations

import urllib.parse

from ._errors import StoreURLError
from ._store import Store, StoreURL

__all__ = ["open_store", "parse_url"]

_FORMS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, redis://host:6379/0 or "
    "postgresql://user@host:5432/dbname, each optionally ending in ?prefix=NAME"
)
_SCHEMES = {
    "sqlite": "sqlite",
    "redis": "redis",
    "rediss": "redis",
    "postgresql": "postgresql",
    "postgres": "postgresql",
}


def _query(url: str, query: str, allowed: tuple[str, ...]) -> tuple[str, list[tuple[str, str]]]:
    """The prefix and the other parameters, refusing repeats and (if `allowed`) strangers."""
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    names = [k for k, _ in pairs]
    for k in names:
        if names.count(k) > 1:
            raise StoreURLError(f"store URL {url!r} gives {k!r} twice; give it once")
        if allowed and k not in allowed:
            raise StoreURLError(
                f"store URL {url!r} has an unknown parameter {k!r}; "
                f"this store takes only {', '.join(allowed)}"
            )
    prefix = dict(pairs).get("prefix", "cw")
    if not (prefix.isidentifier() and prefix.isascii() and len(prefix) <= 40):
        raise StoreURLError(
            f"store prefix must be an identifier of at most 40 letters, digits and "
            f"underscores, like 'orders' (got {prefix!r} in {url!r})"
        )
    return prefix, [(k, v) for k, v in pairs if k != "prefix"]


def _sqlite(url: str, rest: str, query: str) -> StoreURL:
    prefix, _ = _query(url, query, ("prefix",))
    if not rest.startswith("/"):
        raise StoreURLError(
            f"a SQLite store URL has no host: use sqlite:///relative/path.db (relative to the "
            f"working directory) or sqlite:////absolute/path.db (got {url!r})"
        )
    path = urllib.parse.unquote(rest[1:])
    if not path or path.endswith("/") or path == ":memory:":
        raise StoreURLError(
            f"a SQLite store URL needs a file (workers are other processes, so not :memory:): "
            f"sqlite:///relative/path.db or sqlite:////absolute/path.db (got {url!r})"
        )
    return StoreURL("sqlite", path, prefix, url)


def _redis(url: str, scheme: str, rest: str, query: str) -> StoreURL:
    prefix, _ = _query(url, query, ("prefix",))
    netloc, _, db = rest.removeprefix("//").partition("/")
    if not netloc:
        raise StoreURLError(f"a Redis store URL needs a host: redis://host:6379/0 (got {url!r})")
    if db and not (db.isdigit() and db.isascii()):
        raise StoreURLError(
            f"a Redis store URL ends with a database number, as in redis://host:6379/0 "
            f"(got {db!r} in {url!r})"
        )
    return StoreURL("redis", f"{scheme}://{netloc}/{int(db or 0)}", prefix, url)


def _postgres(url: str, scheme: str, rest: str, query: str) -> StoreURL:
    prefix, others = _query(url, query, ())
    target = f"{scheme}:{rest}"
    if others:
        target += "?" + urllib.parse.urlencode(others)
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:  # checked again, with the install hint, when the store opens
        return StoreURL("postgresql", target, prefix, url)
    try:
        conninfo_to_dict(target)  # libpq's own parser: refuses unknown parameters
    except Exception as exc:
        raise StoreURLError(
            f"PostgreSQL store URL {url!r} is not valid: {exc}; use "
            "postgresql://user@host:5432/dbname with libpq's parameters and ?prefix=NAME"
        ) from None
    return StoreURL("postgresql", target, prefix, url)


def parse_url(url: str) -> StoreURL:
    """Parse a store URL strictly (see the module docstring for the forms).

    >>> parse_url("sqlite:///orders.db?prefix=shop")
    StoreURL(kind='sqlite', target='orders.db', prefix='shop', url='sqlite:///orders.db?prefix=shop')

    Raises:
        StoreURLError: not a string, an unknown scheme, a SQLite URL with a host or no file,
            a Redis database that is not a number, an unknown or repeated parameter, or a
            prefix that is not an identifier.
    """
    if not isinstance(url, str):
        raise StoreURLError(f"a store URL is a str like {_FORMS} (got {url!r})")
    scheme, colon, rest = url.partition(":")
    kind = _SCHEMES.get(scheme.lower()) if colon else None
    if kind is None:
        raise StoreURLError(f"unknown store URL {url!r}; use {_FORMS}")
    rest, _, query = rest.partition("?")
    if not rest.startswith("//"):
        raise StoreURLError(f"store URL {url!r} lacks '//' after '{scheme}:'; use {_FORMS}")
    if kind == "sqlite":
        return _sqlite(url, rest[2:], query)
    if kind == "redis":
        return _redis(url, scheme.lower(), rest, query)
    return _postgres(url, scheme.lower(), rest, query)


def open_store(url: str) -> Store:
    """Open the store a URL names, importing its backend.

    Raises:
        StoreURLError: the URL is not one of the forms above.
        ImportError: the backend's client (redis, psycopg) is not installed; install the
            ``workflow`` extra: ``pip install 'stackful-coroutines[workflow]'``.
    """
    parsed = parse_url(url)
    if parsed.kind == "redis":
        from ._redis import RedisStore

        return RedisStore(parsed)
    from ._dialects import dialect_for
    from ._sql import SQLStore

    return SQLStore(parsed, dialect_for(parsed.kind, parsed.target, parsed.prefix))
