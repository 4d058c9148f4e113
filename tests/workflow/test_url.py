"""Store URLs are parsed strictly: every mistake is refused, by name, before a connection."""

from __future__ import annotations

from pathlib import Path

import pytest
from wf_support import POSTGRES, REDIS

from coroutine.workflow import Engine, StoreURLError, WorkflowError
from coroutine.workflow._url import parse_url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://x/y", "unknown store URL 'mysql://x/y'; use sqlite:///relative"),
        ("sqllite:///x.db", "unknown store URL"),
        (b"sqlite:///x.db", "a store URL is a str"),
        ("sqlite:/x.db", "lacks '//' after 'sqlite:'"),
        ("sqlite://", "has no host"),
        ("sqlite://tmp/x.db", "has no host: use sqlite:///relative/path.db"),
        ("sqlite:///", "needs a file"),
        ("sqlite:///:memory:", "not :memory:"),
        ("sqlite:///x.db?prefx=orders", "unknown parameter 'prefx'; this store takes only prefix"),
        ("sqlite:///x.db?prefix=a&prefix=b", "gives 'prefix' twice"),
        ("sqlite:///x.db?prefix=no-dash", "must be an identifier"),
        ("sqlite:///x.db?prefix=" + "a" * 41, "at most 40"),
        ("redis://localhost:6379/notanumber", "database number.*'notanumber'"),
        ("redis://localhost:6379/0?prefx=orders", "unknown parameter 'prefx'"),
        ("redis://localhost:6379/0?socket_timeout=3", "unknown parameter 'socket_timeout'"),
        ("redis:///0", "needs a host"),
        (POSTGRES + "?prefx=orders", 'not valid: invalid URI query parameter: "prefx"'),
    ],
)
def test_a_bad_store_url_is_refused_saying_what_to_write(url: str, message: str) -> None:
    with pytest.raises(StoreURLError, match=message):
        parse_url(url)
    with pytest.raises(StoreURLError):
        Engine(url)


def test_three_slashes_are_relative_to_the_working_directory_as_in_sqlalchemy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with Engine("sqlite:///rel.db"):
        pass
    assert (tmp_path / "rel.db").is_file()
    assert parse_url("sqlite:///sub/rel.db").target == "sub/rel.db"


def test_four_slashes_are_absolute(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/abs.db"
    assert url.startswith("sqlite:////")
    assert parse_url(url).target == f"{tmp_path}/abs.db"
    assert parse_url("sqlite:////a%20b/x.db").target == "/a b/x.db"


def test_good_urls_name_their_backend_target_and_prefix() -> None:
    got = parse_url("redis://h:6379?prefix=shop")
    assert (got.kind, got.target, got.prefix) == ("redis", "redis://h:6379/0", "shop")
    assert parse_url("rediss://h:6380/3").target == "rediss://h:6380/3"
    pg = parse_url(POSTGRES + "?sslmode=disable&prefix=shop")
    assert (pg.kind, pg.prefix) == ("postgresql", "shop")
    assert pg.target == POSTGRES + "?sslmode=disable"
    assert parse_url(REDIS).prefix == "cw"


def test_a_store_made_before_fenced_claims_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / "old.db") as db:  # main's schema, before fenced claims
        db.execute(
            "CREATE TABLE cw_workflows (n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
            " entry TEXT, args TEXT, status TEXT, step INTEGER, error TEXT DEFAULT '',"
            " lease_owner TEXT DEFAULT '', lease_until REAL DEFAULT 0, updated REAL)"
        )
    with pytest.raises(WorkflowError, match=r"schema version older than \d+ .*fence.*finish their"):
        Engine(f"sqlite:///{tmp_path}/old.db")


def test_a_store_made_before_waits_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/v2.db"
    Engine(url).close()
    import sqlite3

    with sqlite3.connect(tmp_path / "v2.db") as db:  # as schema version 2 left it
        db.execute("UPDATE cw_meta SET v = 2 WHERE k = 'schema'")
    with pytest.raises(WorkflowError, match=r"schema version 2, and this coroutine.workflow"):
        Engine(url)
