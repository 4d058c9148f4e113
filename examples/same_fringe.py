"""Same fringe: do two binary trees hold the same leaves in the same order?

The classic coroutine problem (Hewitt's "same fringe", the talk's first example): walk both
trees in one pass, one leaf at a time from each, and stop at the first difference. Each walk
is the plain recursive in-order traversal with one `Yield` in it; the comparison drives two
coroutines in lockstep, so neither tree is flattened into a list first, and trees that differ
early are barely walked at all.

Run it: ``python examples/same_fringe.py``
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coroutine import Coroutine, New, Yield


@dataclass
class Tree:
    """A binary tree whose leaves carry the values; inner nodes only join subtrees."""

    left: Tree | int
    right: Tree | int


visited = 0  # leaves yielded so far by every walk, to show how little work a mismatch costs


def walk(node: Tree | int) -> None:
    """The ordinary recursive traversal, plus one line."""
    global visited
    if isinstance(node, Tree):
        walk(node.left)
        walk(node.right)
    else:
        visited += 1
        Yield[int, Any](node)  # hand the leaf to whoever is comparing


def fringe(tree: Tree | int) -> Coroutine[int, Any]:
    walker: Coroutine[int, Any] = New[int, Any](lambda: walk(tree))
    return walker


def same_fringe(a: Tree | int, b: Tree | int) -> bool:
    """True iff `a` and `b` have equal leaves in equal order; one pass, stops at the first
    difference."""
    with fringe(a) as left, fringe(b) as right:  # `with` unwinds a walk we stop early
        while True:
            more_left, more_right = left.Next(), right.Next()
            if more_left != more_right:
                return False  # one fringe is longer
            if not more_left:
                return True  # both ended together
            if left.Recv() != right.Recv():
                return False


def main() -> None:
    global visited
    # 1 2 3 4 5, shaped three different ways
    balanced = Tree(Tree(1, 2), Tree(3, Tree(4, 5)))
    left_comb = Tree(Tree(Tree(Tree(1, 2), 3), 4), 5)
    right_comb = Tree(1, Tree(2, Tree(3, Tree(4, 5))))
    other = Tree(Tree(1, 2), Tree(3, Tree(5, 4)))
    pairs = {
        "balanced vs left comb": (balanced, left_comb),
        "left comb vs right comb": (left_comb, right_comb),
        "balanced vs 1 2 3 5 4": (balanced, other),
        "balanced vs its left half": (balanced, balanced.left),
    }
    for name, (a, b) in pairs.items():
        print(f"{name}: {same_fringe(a, b)}")

    # A mismatch in the first leaf costs one leaf per tree, whatever the trees' size.
    big_a, big_b = deep_tree(0, 10_000), deep_tree(1, 10_000)
    visited = 0
    print(f"two trees of 10000 leaves differing in the first: {same_fringe(big_a, big_b)}", end="")
    print(f", after visiting {visited} leaves")


def deep_tree(first: int, leaves: int) -> Tree | int:
    """A balanced tree whose leaves are `first`, 1, 2, ..., leaves - 1."""

    def build(lo: int, hi: int) -> Tree | int:
        if hi - lo == 1:
            return first if lo == 0 else lo
        mid = (lo + hi) // 2
        return Tree(build(lo, mid), build(mid, hi))

    return build(0, leaves)


if __name__ == "__main__":
    main()
