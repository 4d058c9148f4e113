"""Runtime type checks: value checks in constant time, and the yield compatibility rule.

Two questions are answered here, for the type forms of SPEC §5:

* `checker(form)` builds a predicate ``value -> bool``. Its cost does not depend on the
  value's size: a container is checked by its own type and by one element (the first),
  never by walking it. Predicates are built once per form and cached.
* `is_subtype(a, b)` decides whether every value of form `a` is a value of form `b`, the
  rule behind ``Yield[R2, S2]`` inside a coroutine of ``[R, S]`` (R2 <: R and S <: S2).
  It answers ``None`` when it cannot tell (an exotic form); callers then fall back to
  equality and say so.

Nothing here knows about coroutines.
"""

from __future__ import annotations

import collections.abc as cabc
import types
import typing
from collections.abc import Callable
from typing import Any, ForwardRef, Union, get_args, get_origin

__all__ = ["accept", "admits_none", "checker", "describe", "is_any_form", "is_subtype"]

Check = Callable[[object], bool]

_NoneType = type(None)
_UNION_ORIGINS: tuple[object, ...] = (Union, types.UnionType)
_LITERAL = typing.Literal
_BOTTOM: tuple[object, ...] = (typing.NoReturn, getattr(typing, "Never", typing.NoReturn))
_ANNOTATED = typing.Annotated
# Containers whose first element can be read without consuming anything.
_REITERABLE = (list, tuple, set, frozenset, dict, cabc.KeysView, cabc.ValuesView, range)
# Abstract generics whose first element is safe to look at only for plain containers.
_SEQUENCE_ORIGINS = (list, cabc.Sequence, cabc.MutableSequence)
_SET_ORIGINS = (set, frozenset, cabc.Set, cabc.MutableSet)
_MAPPING_ORIGINS = (dict, cabc.Mapping, cabc.MutableMapping)
_ITERABLE_ORIGINS = (cabc.Iterable, cabc.Collection, cabc.Container, cabc.Reversible)
# Generic classes whose parameters vary with them (so list[bool] is not a list[int]).
_INVARIANT = (list, dict, set, cabc.MutableSequence, cabc.MutableMapping, cabc.MutableSet)


def accept(_value: object) -> bool:
    return True


def _is_any(form: object) -> bool:
    return form is Any or form is object or (isinstance(form, typing.TypeVar) and _tv_free(form))


def is_any_form(form: object) -> bool:
    """True for the forms every value belongs to: Any, object, unbound TypeVars, Annotated[Any]."""
    return _is_any(_strip(form))


def _is_dynamic(form: object) -> bool:
    """Any (or an unbound TypeVar): compatible with everything in both directions."""
    form = _strip(form)
    return _is_any(form) and form is not object


def _tv_free(tv: typing.TypeVar) -> bool:
    return tv.__bound__ is None and not tv.__constraints__


def _is_typeddict(form: object) -> bool:
    return isinstance(form, type) and issubclass(form, dict) and hasattr(form, "__total__")


def _is_newtype(form: object) -> bool:
    return callable(form) and hasattr(form, "__supertype__")


def _strip(form: object) -> object:
    """Reduce aliases that add nothing to the check: Annotated, NewType, bound TypeVars."""
    while True:
        if get_origin(form) is _ANNOTATED:
            form = get_args(form)[0]
        elif _is_newtype(form):
            form = form.__supertype__  # type: ignore[attr-defined]
        elif isinstance(form, typing.TypeVar) and not _tv_free(form):
            bound = form.__bound__
            form = bound if bound is not None else Union[form.__constraints__]  # noqa: UP007
        elif form is None:
            return _NoneType
        else:
            return form


_cache: dict[object, Check] = {}


def checker(form: object) -> Check:
    """The predicate for values of `form`, built once per (hashable) form."""
    try:
        return _cache[form]
    except KeyError:
        pass
    except TypeError:  # an unhashable form, e.g. Annotated with a list as metadata
        return _build(form)
    check = _build(form)
    _cache[form] = check
    return check


def _build(form: object) -> Check:
    form = _strip(form)
    if _is_any(form):
        return accept
    if form in _BOTTOM:
        return _never
    if isinstance(form, (str, ForwardRef)):
        return _by_name(form if isinstance(form, str) else form.__forward_arg__)
    origin = get_origin(form)
    if origin is None:
        if _is_typeddict(form):
            return _typeddict(form)  # type: ignore[arg-type]
        if isinstance(form, type):
            return _instance_of(form)
        return accept  # an object we cannot interpret: accepted, as mypy would report it
    args = get_args(form)
    if origin in _UNION_ORIGINS:
        return _any_of(args)
    if origin is _LITERAL:
        return _literal(args)
    if origin is type:
        return _subclass_of(args[0] if args else object)
    if origin is cabc.Callable:
        return callable
    if origin is tuple:
        return _tuple(args, bare=form is tuple)
    if not isinstance(origin, type):
        return accept
    if origin in _MAPPING_ORIGINS and len(args) == 2:
        return _mapping(origin, checker(args[0]), checker(args[1]))
    if len(args) == 1 and (
        origin in _SEQUENCE_ORIGINS or origin in _SET_ORIGINS or origin in _ITERABLE_ORIGINS
    ):
        return _first_element(origin, checker(args[0]))
    return _instance_of(origin)


def _never(_value: object) -> bool:
    return False


def _instance_of(cls: type) -> Check:
    if getattr(cls, "_is_protocol", False) and not getattr(cls, "_is_runtime_protocol", False):
        return accept  # isinstance() refuses non-runtime protocols: nothing can be checked
    # The metaclass's bound __instancecheck__ is what isinstance() calls, minus a Python frame
    # of ours: this is the check on every yield of the common case.
    return type(cls).__instancecheck__.__get__(cls)  # type: ignore[no-any-return]


def _by_name(name: str) -> Check:
    """A string forward reference matches a value whose class, or a base, has that name."""
    short = name.rpartition(".")[2]

    def check(value: object) -> bool:
        return any(c.__name__ == short for c in type(value).__mro__)

    return check


def _any_of(forms: tuple[object, ...]) -> Check:
    checks = [checker(a) for a in forms]
    if accept in checks:
        return accept
    classes = tuple(_plain_class(a) for a in forms)
    if all(classes):  # e.g. int | None: one isinstance() with a tuple
        return lambda value: isinstance(value, classes)  # type: ignore[arg-type]
    if any(_is_fixed_tuple(a) for a in forms):  # e.g. tuple[str, str] | tuple[int, int]
        return _compiled(Union[forms])  # noqa: UP007

    def check(value: object) -> bool:
        for c in checks:
            if c(value):
                return True
        return False

    return check


def _plain_class(form: object) -> type | None:
    """`form` as a class whose check is exactly isinstance(), else None."""
    form = _strip(form)
    if not isinstance(form, type) or get_origin(form) is not None or _is_typeddict(form):
        return None
    if getattr(form, "_is_protocol", False):
        return None
    return form


def _literal(values: tuple[object, ...]) -> Check:
    # Literal[1] does not admit True although 1 == True: compare types as well.
    flat: list[object] = []
    for v in values:
        flat.extend(get_args(v) if get_origin(v) is _LITERAL else [v])
    pairs = [(type(v), v) for v in flat]
    return lambda value: any(type(value) is t and value == v for t, v in pairs)


def _subclass_of(bound: object) -> Check:
    bound = _strip(bound)
    if _is_any(bound):
        return lambda value: isinstance(value, type)
    if get_origin(bound) in _UNION_ORIGINS:
        subs = [_subclass_of(a) for a in get_args(bound)]
        return lambda value: any(s(value) for s in subs)
    target = get_origin(bound) or bound
    if not isinstance(target, type):
        return lambda value: isinstance(value, type)
    return lambda value: isinstance(value, type) and issubclass(value, target)


def _tuple(args: tuple[object, ...], bare: bool) -> Check:
    if bare:  # typing.Tuple: any tuple
        return _instance_of(tuple)
    if not args or args == ((),):  # tuple[()], spelled () by 3.11+ and ((),) by 3.10
        return lambda value: isinstance(value, tuple) and not value
    if len(args) == 2 and args[1] is Ellipsis:
        return _first_element(tuple, checker(args[0]))
    return _compiled(tuple[args])  # type: ignore[valid-type]


def _is_fixed_tuple(form: object) -> bool:
    """tuple[A, B, ...] of a fixed length (not tuple[A, ...], not tuple[()])."""
    form = _strip(form)
    if get_origin(form) is not tuple:
        return False
    args = get_args(form)
    return bool(args) and args != ((),) and not (len(args) == 2 and args[1] is Ellipsis)


# Fixed tuples, and unions of them, are checked by one flat expression compiled for the form
# (as dataclasses compiles __init__): ``isinstance(v, tuple) and len(v) == 2 and
# isinstance(v[0], k0) and isinstance(v[1], k1)``, with no generator, zip or call per element.
# A generic ``all(c(x) for ...)`` cost 1.8x an unchecked yield for tuple[str, str] and 2.9x for
# a union of two (instructions, benchmarks/typecheck_instructions.py).


def _compiled(form: object) -> Check:
    env: dict[str, object] = {"isinstance": isinstance, "len": len, "tuple": tuple}
    source = f"lambda v: {_expression(form, 'v', env)}"
    return eval(source, env)  # type: ignore[no-any-return]  # names and ints only, see above


def _expression(form: object, var: str, env: dict[str, object]) -> str:
    """A Python expression that is True iff `var` is a value of `form`."""
    form = _strip(form)
    if _is_fixed_tuple(form):
        items = get_args(form)
        terms = [f"isinstance({var}, tuple)", f"len({var}) == {len(items)}"]
        terms += [_expression(a, f"{var}[{i}]", env) for i, a in enumerate(items)]
        return "(" + " and ".join(t for t in terms if t != "True") + ")"
    if get_origin(form) in _UNION_ORIGINS:
        terms = [_expression(a, var, env) for a in get_args(form)]
        return "True" if "True" in terms else "(" + " or ".join(terms) + ")"
    check = checker(form)
    if check is accept:
        return "True"
    name = f"k{len(env)}"
    cls = _plain_class(form)
    env[name] = cls if cls is not None else check
    return f"isinstance({var}, {name})" if cls is not None else f"{name}({var})"


def _first_element(origin: type, element: Check) -> Check:
    if element is accept:
        return _instance_of(origin)
    if origin in (list, tuple):  # the common case, without the slower ABC checks below

        def check_list(value: object) -> bool:
            return isinstance(value, origin) and (not value or element(value[0]))

        return check_list
    must_be_plain = origin in _ITERABLE_ORIGINS

    def check(value: object) -> bool:
        if not isinstance(value, origin):
            return False
        if must_be_plain and not isinstance(value, _REITERABLE):
            return True  # looking inside could consume a one-shot iterable
        if isinstance(value, cabc.Sequence):
            return len(value) == 0 or element(value[0])
        for first in value:  # type: ignore[attr-defined]
            return element(first)
        return True

    return check


def _mapping(origin: type, key: Check, val: Check) -> Check:
    def check(value: object) -> bool:
        if not isinstance(value, origin):
            return False
        for k in value:  # type: ignore[attr-defined]
            return key(k) and val(value[k])  # type: ignore[index]
        return True

    return check


def _typeddict(td: type) -> Check:
    hints = typing.get_type_hints(td) if _resolvable(td) else td.__annotations__
    fields = [(name, checker(hint)) for name, hint in hints.items()]
    required = frozenset(getattr(td, "__required_keys__", frozenset()))

    def check(value: object) -> bool:
        if not isinstance(value, dict) or not required <= value.keys():
            return False
        for name, c in fields:
            if name in value and not c(value[name]):
                return False
        return True

    return check


def _resolvable(td: type) -> bool:
    try:
        typing.get_type_hints(td)
    except Exception:  # a forward reference that cannot be resolved: keep the raw hints
        return False
    return True


def admits_none(form: object) -> bool:
    """True if `None` is a value of `form` (Any, object, None, Optional[...], ...)."""
    return checker(form)(None)


# ---------------------------------------------------------------------------------------
# The compatibility rule


def is_subtype(sub: object, sup: object) -> bool | None:
    """Whether every value of `sub` is a value of `sup`; ``None`` when undecidable.

    `Any` is compatible both ways; ``object`` is the top; unions and Literals are split;
    generics compare their origins by subclass and their arguments covariantly, except for
    the mutable containers (list, dict, set...), whose arguments must be equal.
    """
    if sub == sup:
        return True
    sub, sup = _strip(sub), _strip(sup)
    if sub == sup or _is_dynamic(sub) or _is_any(sup):
        return True
    if sub in _BOTTOM:
        return True
    if get_origin(sub) in _UNION_ORIGINS:
        return _all([is_subtype(a, sup) for a in get_args(sub)])
    if get_origin(sup) in _UNION_ORIGINS:
        return _some([is_subtype(sub, b) for b in get_args(sup)])
    if get_origin(sub) is _LITERAL:
        return all(checker(sup)(v) for v in get_args(sub))
    if get_origin(sup) is _LITERAL or sub is object:
        return False
    if _is_typeddict(sub) or _is_typeddict(sup):
        return None if _is_typeddict(sub) and _is_typeddict(sup) else _class_le(sub, sup)
    if isinstance(sub, (str, ForwardRef)) or isinstance(sup, (str, ForwardRef)):
        return None
    return _generic_le(sub, sup)


def _all(answers: list[bool | None]) -> bool | None:
    if False in answers:
        return False
    return None if None in answers else True


def _some(answers: list[bool | None]) -> bool | None:
    if True in answers:
        return True
    return None if None in answers else False


def _class_le(sub: object, sup: object) -> bool | None:
    if isinstance(sub, type) and isinstance(sup, type):
        try:
            return issubclass(sub, sup)
        except TypeError:  # a non-runtime Protocol
            return None
    return None


def _generic_le(sub: object, sup: object) -> bool | None:
    sub_origin, sup_origin = get_origin(sub) or sub, get_origin(sup) or sup
    if sub_origin is type and sup_origin is type:
        return _args_le(get_args(sub) or (Any,), get_args(sup) or (Any,), covariant=True)
    if sup_origin is cabc.Callable:
        return _callable_le(sub, sup)
    if sub_origin is cabc.Callable:
        return False
    ok = _class_le(sub_origin, sup_origin)
    if not ok:
        return ok
    sub_args, sup_args = get_args(sub), get_args(sup)
    if not sup_args or not sub_args:
        return True  # a bare generic is read as parametrised by Any
    if sub_origin is tuple and sup_origin is tuple:
        return _tuple_le(sub_args, sup_args)
    if sub_origin is not sup_origin and len(sub_args) != len(sup_args):
        return None
    return _args_le(sub_args, sup_args, covariant=sup_origin not in _INVARIANT)


def _callable_le(sub: object, sup: object) -> bool | None:
    """Callables: parameters contravariant, return covariant; `...` accepts any parameters."""
    if get_origin(sub) is not cabc.Callable:
        # A class whose instances are not callable is not a Callable; one with __call__ is,
        # but its signature is not compared.
        if not isinstance(sub, type) or not issubclass(sub, cabc.Callable):  # type: ignore[arg-type]
            return False
        return True if not get_args(sup) else None
    if not get_args(sup) or not get_args(sub):
        return True
    (sub_params, sub_ret), (sup_params, sup_ret) = _signature(sub), _signature(sup)
    answers = [is_subtype(sub_ret, sup_ret)]
    if sup_params is not Ellipsis and sub_params is not Ellipsis:  # `...` fits both ways
        if len(sub_params) != len(sup_params):  # type: ignore[arg-type]
            return None
        pairs = zip(sub_params, sup_params, strict=True)  # type: ignore[call-overload]
        answers += [is_subtype(b, a) for a, b in pairs]
    return _all(answers)


def _signature(form: object) -> tuple[object, object]:
    args = get_args(form)
    return (args[0], args[1]) if len(args) == 2 else (Ellipsis, args[-1])


def _args_le(
    sub_args: tuple[object, ...], sup_args: tuple[object, ...], covariant: bool
) -> bool | None:
    if len(sub_args) != len(sup_args):
        return None
    if covariant:
        return _all([is_subtype(a, b) for a, b in zip(sub_args, sup_args, strict=True)])
    return _all([_equivalent(a, b) for a, b in zip(sub_args, sup_args, strict=True)])


def _equivalent(a: object, b: object) -> bool | None:
    if _is_dynamic(a) or _is_dynamic(b):
        return True
    return _all([is_subtype(a, b), is_subtype(b, a)])


def _tuple_le(sub_args: tuple[object, ...], sup_args: tuple[object, ...]) -> bool | None:
    if len(sup_args) == 2 and sup_args[1] is Ellipsis:
        items = sub_args[:1] if len(sub_args) == 2 and sub_args[1] is Ellipsis else sub_args
        return _all([is_subtype(a, sup_args[0]) for a in items])
    if len(sub_args) == 2 and sub_args[1] is Ellipsis:
        return False
    return _args_le(sub_args, sup_args, covariant=True)


# ---------------------------------------------------------------------------------------
# Names for messages


def describe(form: object) -> str:
    """`form` as a reader would write it: ``int``, ``list[int] | None``, ``Any``."""
    if form is None or form is _NoneType:
        return "None"
    if form is Any:
        return "Any"
    if isinstance(form, type) and not get_args(form):
        return form.__qualname__ if form.__module__ != "builtins" else form.__name__
    if isinstance(form, str):
        return repr(form)
    return repr(form).replace("typing.", "")
