"""Push to pull: the standard library's callback HTML parser as a lazy iterator of events.

`html.parser.HTMLParser` pushes: you `feed` it text and it calls your `handle_starttag`,
`handle_data`, ... methods from inside `feed`. Most programs want to pull instead: ``for
event in events(page)``, stopping whenever they like. The usual fixes are a thread plus a
queue, or collecting every event of the whole document into a list first. Here each callback
`Yield`s its event, straight through `feed` (which we do not own), so `html_events` reads the
input one chunk at a time, only as far as the consumer iterates.

Run it: ``python examples/push_pull.py [FILE.html]`` (without a file it makes a page of about 1 MB)
"""

from __future__ import annotations

import io
import itertools
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Literal, NamedTuple, TextIO

from coroutine import New, Yield


class Event(NamedTuple):
    kind: Literal["start", "end", "data"]  # as with HTMLParser, text may come in pieces
    tag: str  # "" for data
    attrs: dict[str, str | None]
    text: str = ""


class _Pusher(HTMLParser):
    """The callbacks: each hands its event to whoever iterates, then returns to `feed`."""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        Yield[Event, None](Event("start", tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        Yield[Event, None](Event("end", tag, {}))

    def handle_data(self, data: str) -> None:
        Yield[Event, None](Event("data", "", {}, data))


def html_events(stream: TextIO, chunk_size: int = 8192) -> Iterator[Event]:
    """The events of the HTML read from `stream`, lazily: a chunk is read only when the
    events of the previous ones are used up."""

    def parse() -> None:
        parser = _Pusher()
        while chunk := stream.read(chunk_size):
            parser.feed(chunk)  # the callbacks yield from inside here
        parser.close()

    return iter(New[Event, None](parse))


def links(events: Iterator[Event]) -> Iterator[str]:
    for event in events:
        href = event.attrs.get("href")
        if event.kind == "start" and event.tag == "a" and href:
            yield href


class CountingReader(io.StringIO):
    """A text stream that counts the characters handed out."""

    consumed = 0

    def read(self, size: int | None = -1, /) -> str:
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk


def sample_page(n_links: int) -> str:
    rows = "".join(
        f'<li><a href="https://example.org/item/{i}">item {i}</a> <em>note</em></li>\n'
        for i in range(n_links)
    )
    return f"<html><head><title>Catalogue</title></head><body><ul>\n{rows}</ul></body></html>\n"


def main(argv: list[str]) -> None:
    if argv:
        with open(argv[0], encoding="utf-8") as f:
            text = f.read()
    else:
        text = sample_page(12_000)
    stream = CountingReader(text)
    found = links(html_events(stream))

    first = list(itertools.islice(found, 3))
    print("first links:", ", ".join(first))
    print(f"read so far: {stream.consumed} of {len(text)} characters")
    rest = sum(1 for _ in found)
    print(f"links in the whole page: {len(first) + rest}")
    print(f"read in the end: {stream.consumed} of {len(text)} characters")


if __name__ == "__main__":
    main(sys.argv[1:])
