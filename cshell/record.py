"""``@record``: plain data classes without the cost of ``dataclasses`` at start-up.

``dataclasses`` compiles source code for every class it decorates (about a
millisecond each) and pulls in ``inspect``: with twenty such classes that was
a quarter of a one-shot `cshell run`. ``record`` gives the part we use — an
``__init__`` from the annotated fields, keyword or positional, defaults,
``factory(list)`` for mutable defaults, ``__repr__``, ``__eq__``, and
``frozen=True`` — with no code generation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_MISSING = object()


class factory:  # noqa: N801 - reads like dataclasses.field(default_factory=...)
    """A default made fresh for each instance: ``items: list[str] = factory(list)``."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def _fields(cls: type) -> list[tuple[str, Any]]:
    fields: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        for name in klass.__dict__.get("__annotations__", {}):
            if not name.startswith("_") or name in klass.__dict__:
                fields[name] = klass.__dict__.get(name, _MISSING)
    return list(fields.items())


def record(cls: type[T] | None = None, *, frozen: bool = False) -> Any:
    def wrap(klass: type[T]) -> type[T]:
        fields = _fields(klass)
        names = tuple(name for name, _ in fields)

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807
            if len(args) > len(names):
                raise TypeError(f"{klass.__name__} takes {len(names)} arguments, {len(args)} given")
            values = dict(zip(names, args, strict=False))
            for key, value in kwargs.items():
                if key not in names or key in values:
                    raise TypeError(f"{klass.__name__}: unexpected or repeated argument {key!r}")
                values[key] = value
            for name, default in fields:
                if name not in values:
                    if default is _MISSING:
                        raise TypeError(f"{klass.__name__} needs {name!r}")
                    values[name] = default.make() if isinstance(default, factory) else default
                object.__setattr__(self, name, values[name])

        def __repr__(self: Any) -> str:  # noqa: N807
            inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in names if not n.startswith("_"))
            return f"{klass.__name__}({inner})"

        def __eq__(self: Any, other: object) -> bool:  # noqa: N807
            if other.__class__ is not self.__class__:
                return NotImplemented
            return all(getattr(self, n) == getattr(other, n) for n in names)

        klass.__init__ = __init__  # type: ignore[assignment]
        klass.__repr__ = __repr__  # type: ignore[assignment]
        klass.__eq__ = __eq__  # type: ignore[assignment]
        if frozen:
            def __setattr__(self: Any, name: str, value: Any) -> None:  # noqa: N807
                raise AttributeError(f"{klass.__name__} is frozen: cannot set {name}")

            def __hash__(self: Any) -> int:  # noqa: N807
                return hash(tuple(getattr(self, n) for n in names))

            klass.__setattr__ = __setattr__  # type: ignore[assignment]
            klass.__hash__ = __hash__  # type: ignore[assignment]
        else:
            klass.__hash__ = None  # type: ignore[assignment]  # like a mutable dataclass
        for name, default in fields:  # class attributes that are factories would confuse readers
            if isinstance(default, factory):
                delattr(klass, name)
        return klass

    return wrap(cls) if cls is not None else wrap
