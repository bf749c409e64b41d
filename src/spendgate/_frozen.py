"""Cheaper construction of frozen, slotted dataclasses on the request path.

A frozen dataclass's generated ``__init__`` sets each field through ``object.__setattr__``: a slow C
wrapper call per field (~0.1 µs each; a 33-field ledger event spends most of its construction there).
:func:`fast_init` replaces that ``__init__`` with one of the same signature that switches the new
object to a *twin* class (the same slot layout, not frozen) for plain attribute stores, switches it
back, and then runs ``__post_init__``. The object is an instance of the dataclass from start to end
as far as any caller can tell: frozen, equal, hashable, picklable, with the same defaults and errors.
:class:`spendgate.pricing` does the same for its cost breakdowns.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["fast_init", "twin"]

_T = TypeVar("_T")
_TWINS: dict[type, type] = {}


def twin(cls: type) -> type:
    """The unfrozen class with ``cls``'s slot layout: ``obj.__class__ = twin(cls)`` allows plain stores."""
    made = _TWINS.get(cls)
    if made is None:
        if cls.__bases__ != (object,) or "__slots__" not in cls.__dict__:
            raise TypeError(f"{cls.__name__}: only a slotted class with no base class has a twin")
        made = _TWINS[cls] = type(f"_{cls.__name__}Twin", (), {"__slots__": cls.__dict__["__slots__"]})
    return made


def fast_init(cls: type[_T]) -> type[_T]:
    """Class decorator (above ``@dataclass(frozen=True, slots=True)``): a faster ``__init__``, same behaviour.

    The generated ``__init__`` takes the same parameters (positional or keyword-only, defaults and
    default factories included), stores each field once and calls ``__post_init__`` if there is one.
    Fails at import, not later, when the class does not have the layout this needs.
    """
    params = dataclasses.fields(cls)  # type: ignore[arg-type]
    if not getattr(cls, "__dataclass_params__").frozen:  # noqa: B009 - not in the typeshed
        raise TypeError(f"{cls.__name__}: fast_init is for frozen dataclasses")
    namespace: dict[str, Any] = {"_cls": cls, "_twin": twin(cls), "_set": object.__setattr__, "_missing": object()}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = ["    _set(self, '__class__', _twin)"]
    for f in params:
        name = f.name
        if not f.init:
            if f.default is not dataclasses.MISSING:
                namespace[f"_d_{name}"] = f.default
                body.append(f"    self.{name} = _d_{name}")
            elif f.default_factory is not dataclasses.MISSING:
                namespace[f"_f_{name}"] = f.default_factory
                body.append(f"    self.{name} = _f_{name}()")
            continue
        if f.default is not dataclasses.MISSING:
            namespace[f"_d_{name}"] = f.default
            param = f"{name}=_d_{name}"
            body.append(f"    self.{name} = {name}")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_f_{name}"] = f.default_factory
            param = f"{name}=_missing"
            body.append(f"    self.{name} = _f_{name}() if {name} is _missing else {name}")
        else:
            param = name
            body.append(f"    self.{name} = {name}")
        (keyword if f.kw_only else positional).append(param)
    body.append("    self.__class__ = _cls")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    signature = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    exec(f"def __init__({signature}):\n" + "\n".join(body) + "\n", namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    # Check now that the twin's layout is assignable (TypeError at import otherwise).
    probe = object.__new__(cls)
    object.__setattr__(probe, "__class__", namespace["_twin"])
    probe.__class__ = cls
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
