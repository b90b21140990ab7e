"""The generic ``Registry``: registration, duplicates, unknown names and order."""

from __future__ import annotations

import pytest

from trainables.errors import MedsweepError, UnknownNameError
from trainables.registries import Registry


def test_entries_given_at_construction_resolve_by_name():
    registry = Registry("colour", entries={"red": 1, "green": 2})
    assert registry.get("red") == 1 and registry["green"] == 2
    assert "red" in registry and "blue" not in registry and len(registry) == 2


def test_add_and_register_return_what_they_registered():
    registry: Registry[object] = Registry("builder")

    @registry.register("square")
    def square(x):
        return x * x

    assert registry.add("cube", abs) is abs
    assert square(3) == 9 and registry.get("square") is square


def test_a_name_registered_twice_is_refused_keeping_the_first():
    registry = Registry("colour", entries={"red": 1})
    with pytest.raises(ValueError, match="colour 'red' is registered twice"):
        registry.add("red", 2)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("red")(3)
    assert registry.get("red") == 1


def test_an_unknown_name_lists_its_near_matches_then_the_valid_ones_sorted():
    registry = Registry("colour", entries={"red": 1, "blue": 2, "green": 3})
    for lookup in (registry.get, registry.__getitem__):
        with pytest.raises(UnknownNameError) as info:
            lookup("rde")
        assert str(info.value) == "unknown colour 'rde'; near matches: red; valid colours: blue, green, red"
        assert isinstance(info.value, MedsweepError) and isinstance(info.value, KeyError)


def test_iteration_follows_registration_order():
    registry = Registry("colour", entries={"red": 1, "blue": 2})
    registry.add("green", 3)
    assert list(registry) == registry.names() == ["red", "blue", "green"]
    assert registry.items() == [("red", 1), ("blue", 2), ("green", 3)]
    assert registry.values() == [1, 2, 3]


def test_every_error_class_of_the_project_is_a_medsweep_error():
    """One error family: every exception class defined in trainables/, sweeps/ and analysis/
    derives from MedsweepError (the CLIs catch that only), bar internal control flow: the
    training loop's, and the Ctrl-C that carries its resumable experiment (a KeyboardInterrupt
    on purpose, so that everything treating Ctrl-C as Ctrl-C still does)."""
    import importlib
    import inspect
    import pkgutil

    import analysis
    import sweeps
    import trainables
    from trainables.errors import MedsweepError

    internal = {"trainables.engine.Diverged", "trainables.datasets.detection.regions.RegionProblem",
                "sweeps.sweep.SweepInterrupted"}
    outside = []
    for package in (trainables, sweeps, analysis):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if (inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == info.name
                        and not issubclass(value, MedsweepError) and f"{info.name}.{name}" not in internal):
                    outside.append(f"{info.name}.{name}")
    assert outside == []
