"""@record: the small dataclass replacement used on the start-up path."""

from __future__ import annotations

import pytest

from cshell.record import factory, record


@record
class Point:
    x: int
    y: int = 0
    tags: list[str] = factory(list)


@record(frozen=True)
class Key:
    name: str
    size: int = 1


def test_positional_keyword_and_defaults() -> None:
    p = Point(1, tags=["a"])
    assert (p.x, p.y, p.tags) == (1, 0, ["a"])
    assert Point(x=2, y=3) == Point(2, 3)
    assert repr(Point(1)) == "Point(x=1, y=0, tags=[])"


def test_factory_defaults_are_fresh() -> None:
    a, b = Point(1), Point(2)
    a.tags.append("x")
    assert b.tags == []


def test_missing_extra_and_repeated_arguments_fail() -> None:
    with pytest.raises(TypeError):
        Point()
    with pytest.raises(TypeError):
        Point(1, 2, [], 4)
    with pytest.raises(TypeError):
        Point(1, x=2)
    with pytest.raises(TypeError):
        Point(1, z=2)


def test_frozen_records_are_hashable_and_read_only() -> None:
    k = Key("a")
    assert {k: 1}[Key("a", 1)] == 1
    with pytest.raises(AttributeError):
        k.name = "b"  # type: ignore[misc]


def test_mutable_records_are_not_hashable() -> None:
    with pytest.raises(TypeError):
        hash(Point(1))
