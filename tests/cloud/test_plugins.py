"""The plugin registry shared by rule kinds, detectors and notification channels."""

from __future__ import annotations

import pytest

from cloud.core.plugins import Registry, UnknownPluginError
from cloud.notify import UnknownChannelError
from cloud.notify import get as channel
from cloud.rules.detectors import UnknownDetectorError
from cloud.rules.detectors import get as detector
from cloud.rules.registry import UnknownRuleError
from cloud.rules.registry import get as rule


class Shape:
    label = ""


class UnknownShapeError(UnknownPluginError):
    what = "shape"


def test_a_registered_class_is_found_by_name_and_learns_it() -> None:
    shapes: Registry[Shape] = Registry("shape", "label", UnknownShapeError)

    @shapes.register("square")
    class Square(Shape):
        pass

    assert shapes.get("square") is Square
    assert Square.label == "square"
    assert shapes.names() == ["square"]


def test_a_name_registered_twice_is_refused() -> None:
    shapes: Registry[Shape] = Registry("shape", "label", UnknownShapeError)
    shapes.register("square")(type("Square", (Shape,), {}))
    with pytest.raises(ValueError, match="shape 'square' registered twice"):
        shapes.register("square")(type("Other", (Shape,), {}))


def test_an_unknown_name_is_refused_naming_what_is_known() -> None:
    shapes: Registry[Shape] = Registry("shape", "label", UnknownShapeError)
    shapes.register("square")(type("Square", (Shape,), {}))
    with pytest.raises(UnknownShapeError, match=r"unknown shape 'circle'; known: square") as caught:
        shapes.get("circle")
    assert (caught.value.name, caught.value.known) == ("circle", ["square"])


@pytest.mark.parametrize(
    ("lookup", "error", "what"),
    [
        (rule, UnknownRuleError, "unknown rule 'x'"),
        (detector, UnknownDetectorError, "unknown detector 'x'"),
        (channel, UnknownChannelError, "unknown channel type 'x'"),
    ],
)
def test_each_cloud_registry_names_its_kind_when_a_name_is_unknown(
    lookup: object, error: type, what: str
) -> None:
    with pytest.raises(error, match=what):
        lookup("x")  # type: ignore[operator]
