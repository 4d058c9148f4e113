"""Conway's pipeline: a lexer coroutine feeding a parser coroutine, one token at a time.

In 1958 Melvin Conway wanted a one-pass COBOL compiler. Written as subroutines, the lexer
had to write all its tokens to tape before the parser could read them. Written as
coroutines, the parser asks the lexer for the next token whenever it needs one, and the
tapes disappear. Conway coined the word "coroutine" for this.

Here the same pipeline compiles a tiny language, one statement per punched card:

    cards --> lexer coroutine --tokens--> parser coroutine --instructions--> stack machine

The lexer is a loop over cards that `Yield`s each token. The parser is an ordinary
recursive-descent parser: `factor` (three calls deep) pulls tokens by driving the lexer,
and `emit` (at any depth) `Yield`s each instruction to the machine, which runs it at once.
With generators every parsing function would have to become a generator and each call a
``yield from``. The trace shows the one pass: card 2 is not read until statement 1 has been
compiled and run.

Run it: ``python examples/conway.py`` (add ``--quiet`` to print only the program's output)
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from coroutine import Coroutine, New, Yield

CARDS = [
    "x = 2 + 3 * 4",
    "y = (x - 4) * -2",
    "print x * y + 1",
]


@dataclass(frozen=True)
class Token:
    kind: str  # "num", "name", "op", "end" (of a card), "eof"
    text: str
    card: int


@dataclass(frozen=True)
class Instr:
    op: str  # "push", "load", "store", "add", "sub", "mul", "neg", "print"
    arg: int | str | None = None


_TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z_]\w*)|(\S))")

trace: Callable[[str], None] = print


# -- the lexer: a plain loop over the cards --------------------------------------------


def lexer(cards: Iterable[str]) -> None:
    """Yield the tokens of each card, an "end" token after each, then "eof"."""
    n = 0
    for n, card in enumerate(cards, 1):
        trace(f"lexer   card {n}: {card}")
        for num, name, op in _TOKEN.findall(card):
            kind = "num" if num else "name" if name else "op"
            Yield[Token, None](Token(kind, num or name or op, n))
        Yield[Token, None](Token("end", "", n))
    Yield[Token, None](Token("eof", "", n))


# -- the parser: recursive descent, unchanged by being a coroutine ----------------------


def emit(op: str, arg: int | str | None = None) -> None:
    Yield[Instr, None](Instr(op, arg))


class Parser:
    """program := {statement end} eof;  statement := "print" expr | name "=" expr
    expr := term {("+" | "-") term};  term := factor {"*" factor}
    factor := num | name | "(" expr ")" | "-" factor
    """

    def __init__(self, tokens: Coroutine[Token, None]) -> None:
        self.tokens = tokens
        self.tok = Token("eof", "", 0)
        self.advance()

    def advance(self) -> None:
        """Take the next token: resume the lexer until its next `Yield`."""
        if self.tokens.Next():
            self.tok = self.tokens.Recv()

    def expect(self, kind: str, text: str | None = None) -> str:
        tok = self.tok
        if tok.kind != kind or (text is not None and tok.text != text):
            want = repr(text) if text is not None else kind
            raise SyntaxError(f"card {tok.card}: expected {want}, got {tok.text or tok.kind!r}")
        self.advance()
        return tok.text

    def program(self) -> None:
        while self.tok.kind != "eof":
            self.statement()
            self.expect("end")

    def statement(self) -> None:
        if self.tok.text == "print":
            self.advance()
            self.expr()
            emit("print")
        else:
            name = self.expect("name")
            self.expect("op", "=")
            self.expr()
            emit("store", name)

    def expr(self) -> None:
        self.term()
        while self.tok.text in ("+", "-"):
            op = "add" if self.tok.text == "+" else "sub"
            self.advance()
            self.term()
            emit(op)

    def term(self) -> None:
        self.factor()
        while self.tok.text == "*":
            self.advance()
            self.factor()
            emit("mul")

    def factor(self) -> None:
        tok = self.tok
        if tok.kind == "num":
            self.advance()
            emit("push", int(tok.text))
        elif tok.kind == "name":
            self.advance()
            emit("load", tok.text)
        elif tok.text == "(":
            self.advance()
            self.expr()
            self.expect("op", ")")
        elif tok.text == "-":
            self.advance()
            self.factor()
            emit("neg")
        else:
            raise SyntaxError(f"card {tok.card}: unexpected {tok.text or tok.kind!r}")


def compiler(cards: Iterable[str]) -> Coroutine[Instr, None]:
    """The pipeline: a parser coroutine that drives a lexer coroutine."""

    def parse() -> None:
        with New[Token, None](lambda: lexer(cards)) as tokens:
            Parser(tokens).program()

    parser: Coroutine[Instr, None] = New[Instr, None](parse)
    return parser


# -- the machine: runs each instruction as soon as the parser emits it ------------------


def run(cards: Iterable[str]) -> tuple[dict[str, int], list[int]]:
    """Compile and run `cards` in one pass; return the variables and what was printed."""
    env: dict[str, int] = {}
    printed: list[int] = []
    stack: list[int] = []
    binary: dict[str, Callable[[int, int], int]] = {
        "add": lambda a, b: a + b,
        "sub": lambda a, b: a - b,
        "mul": lambda a, b: a * b,
    }
    for ins in compiler(cards):
        trace(f"machine {ins.op} {'' if ins.arg is None else ins.arg}".rstrip())
        if ins.op == "push":
            assert isinstance(ins.arg, int)
            stack.append(ins.arg)
        elif ins.op == "load":
            stack.append(env[str(ins.arg)])
        elif ins.op == "store":
            env[str(ins.arg)] = stack.pop()
        elif ins.op == "neg":
            stack.append(-stack.pop())
        elif ins.op == "print":
            printed.append(stack.pop())
            trace(f"output  {printed[-1]}")
        else:
            b, a = stack.pop(), stack.pop()
            stack.append(binary[ins.op](a, b))
    return env, printed


def main(argv: list[str]) -> None:
    global trace
    quiet = "--quiet" in argv
    if quiet:
        trace = _silent
    env, printed = run(CARDS)
    if quiet:
        print(*printed, sep="\n")
    else:
        print("variables:", ", ".join(f"{k} = {v}" for k, v in env.items()))


def _silent(_: Any) -> None:
    pass


if __name__ == "__main__":
    main(sys.argv[1:])
