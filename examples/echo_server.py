"""A cooperative I/O scheduler on `selectors`: an echo server and 100 clients in one thread.

The network code below is written as ordinary blocking code: `accept`, `connect`, `recv`
and `sendall` loop until they are done. Where a non-blocking socket would block, they
`Yield` a request, "wake me when this socket is readable" (or writable), to a small event
loop, which parks the coroutine in a `selectors` selector and resumes it when the operating
system says the socket is ready. The handlers and clients never mention the loop, and
nothing is `async`: this is the design of gevent and of the Go runtime's network poller,
in about a hundred lines.

The program serves 100 concurrent clients, each doing 20 round trips, from one thread, on
127.0.0.1 and a port the system picks; it stops by itself once the last client is done, or
fails after a deadline.

Run it: ``python examples/echo_server.py [--clients N] [--timeout SECONDS]``
"""

from __future__ import annotations

import argparse
import errno
import functools
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from coroutine import Coroutine, New, Yield

# -- what a task can ask of the loop --------------------------------------------------


@dataclass(frozen=True)
class Wait:
    """Resume me once `sock` is ready for `events` (EVENT_READ or EVENT_WRITE)."""

    sock: socket.socket
    events: int


@dataclass(frozen=True)
class Spawn:
    """Start `fn` as a new task, and carry on."""

    fn: Callable[[], None]


Request = Wait | Spawn


def wait_readable(sock: socket.socket) -> None:
    Yield[Request, None](Wait(sock, selectors.EVENT_READ))


def wait_writable(sock: socket.socket) -> None:
    Yield[Request, None](Wait(sock, selectors.EVENT_WRITE))


def spawn(fn: Callable[[], None]) -> None:
    Yield[Request, None](Spawn(fn))


# -- blocking-style socket calls that wait cooperatively ------------------------------


def accept(listener: socket.socket) -> socket.socket:
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            wait_readable(listener)
        else:
            conn.setblocking(False)
            return conn


def connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    err = sock.connect_ex(address)
    if err in (errno.EINPROGRESS, errno.EWOULDBLOCK):
        wait_writable(sock)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        sock.close()
        raise OSError(err, f"connect to {address}: {errno.errorcode.get(err, err)}")
    return sock


def recv(sock: socket.socket, size: int) -> bytes:
    while True:
        try:
            return sock.recv(size)
        except BlockingIOError:
            wait_readable(sock)


def sendall(sock: socket.socket, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view) :]
        except BlockingIOError:
            wait_writable(sock)


# -- the loop -------------------------------------------------------------------------


class Loop:
    """Runs tasks until none is left; each task is a coroutine yielding `Request`s."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.ready: deque[Coroutine[Request, None]] = deque()
        self.tasks: set[Coroutine[Request, None]] = set()  # every task not yet finished

    def spawn(self, fn: Callable[[], None]) -> None:
        task = New[Request, None](fn)
        self.tasks.add(task)
        self.ready.append(task)

    def run(self, timeout: float) -> None:
        """Run until every task has finished; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        try:
            while self.tasks:
                while self.ready:
                    self.step(self.ready.popleft())
                if not self.tasks:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.tasks)} tasks still waiting after {timeout} s")
                for key, _ in self.selector.select(left):
                    self.selector.unregister(key.fileobj)
                    self.ready.append(key.data)
        finally:
            for task in self.tasks:  # on error or timeout: unwind the rest (their
                task.close()  # `with` blocks close their sockets)
            self.selector.close()

    def step(self, task: Coroutine[Request, None]) -> None:
        if not task.Next():
            self.tasks.discard(task)
            return
        request = task.Recv()
        if isinstance(request, Spawn):
            self.spawn(request.fn)
            self.ready.append(task)
        else:
            self.selector.register(request.sock, request.events, task)


# -- the program: plain blocking-style code -------------------------------------------


class Stats:
    def __init__(self) -> None:
        self.open = 0
        self.most_open = 0  # the most connections the server held at once
        self.echoed = 0  # clients whose every reply matched


def serve(listener: socket.socket, connections: int, stats: Stats) -> None:
    """Accept `connections` clients, each handled by its own task, then stop listening."""
    with listener:
        for _ in range(connections):
            conn = accept(listener)
            spawn(functools.partial(handle, conn, stats))


def handle(conn: socket.socket, stats: Stats) -> None:
    stats.open += 1
    stats.most_open = max(stats.most_open, stats.open)
    with conn:
        while data := recv(conn, 4096):
            sendall(conn, data)
    stats.open -= 1


def client(address: tuple[str, int], n: int, round_trips: int, stats: Stats) -> None:
    with connect(address) as sock:
        for i in range(round_trips):
            message = f"client {n} says hello #{i}\n".encode() * 8
            sendall(sock, message)
            reply = b""
            while len(reply) < len(message):
                chunk = recv(sock, 4096)
                if not chunk:
                    raise ConnectionError(f"client {n}: server closed early")
                reply += chunk
            if reply != message:
                raise AssertionError(f"client {n}: got {reply[:40]!r}... back")
    stats.echoed += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--round-trips", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(args.clients)
    listener.setblocking(False)
    address = listener.getsockname()

    stats = Stats()
    loop = Loop()
    loop.spawn(functools.partial(serve, listener, args.clients, stats))
    for n in range(args.clients):
        loop.spawn(functools.partial(client, address, n, args.round_trips, stats))
    start = time.perf_counter()
    loop.run(timeout=args.timeout)
    elapsed = time.perf_counter() - start

    print(f"echo server on 127.0.0.1:{address[1]}, {threading.active_count()} thread")
    print(f"clients whose {args.round_trips} round trips all echoed back: {stats.echoed}")
    print(f"most connections open at once: {stats.most_open}")
    print(f"took {elapsed:.2f} s")


if __name__ == "__main__":
    main()
