"""The type variables of `Coroutine`, kept out of the public stub so that importing them from
`coroutine` is an error, while checkers print their plain names ("R@Coroutine").

Stub-only: there is no ``coroutine._typevars`` at run time.
"""

from typing import Any

from typing_extensions import TypeVar

R = TypeVar("R", covariant=True, default=Any)  # what a coroutine yields
S = TypeVar("S", contravariant=True, default=Any)  # what its driver sends
T = TypeVar("T", covariant=True, default=None)  # what NewWithReturn's body returns
