"""A module that loads on first attribute access: ``pd = lazy_module("pandas")`` keeps a plain
``simulator.predict`` (and ``hwperf predict``) from importing pandas at start-up; each caller pays only for
what it uses."""

from __future__ import annotations

import importlib


class LazyModule:
    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr):
        return getattr(importlib.import_module(self._name), attr)


def lazy_module(name: str) -> LazyModule:
    return LazyModule(name)
