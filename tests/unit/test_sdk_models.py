"""The SDKs' generated models are worked out once, at import, before any thread builds one.

Their ``Model.__new__`` fills a class's field tables on first use while iterating the class's
``__dict__``: two threads doing it at once for one class raise "dictionary changed size during
iteration" (the chaos suite lost a queue listener of the local host to it). Importing the adapter
that uses an SDK must leave no class of that SDK for a thread to work out.
"""

from __future__ import annotations

import importlib

import pytest

from shared.adapters import sdk_models


def _model_classes(model_base: str) -> list[type]:
    base = importlib.import_module(model_base)
    todo, found = list(base.Model.__subclasses__()), []
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        found.append(cls)
    return found


@pytest.mark.parametrize(
    ("adapter", "sdk"),
    [
        ("shared.adapters.storage", sdk_models.QUEUE),
        ("shared.adapters.keyvault", sdk_models.KEYS),
        ("shared.adapters.metrics", sdk_models.METRICS),
    ],
)
def test_importing_an_adapter_works_out_every_model_class_of_its_sdk(adapter: str, sdk: tuple[str, str]) -> None:
    importlib.import_module(adapter)
    model_base, _ = sdk
    calculated = importlib.import_module(model_base).Model._calculated
    classes = _model_classes(model_base)
    assert len(classes) > 5, f"{model_base}: the SDK's models were not found (has the SDK changed its layout?)"
    missing = [c.__qualname__ for c in classes if f"{c.__module__}.{c.__qualname__}" not in calculated]
    assert missing == []


def test_preparing_again_changes_nothing_and_a_missing_sdk_is_skipped() -> None:
    model_base, _ = sdk_models.QUEUE
    before = set(importlib.import_module(model_base).Model._calculated)
    assert sdk_models.prepare(*sdk_models.QUEUE) == len(_model_classes(model_base))
    assert set(importlib.import_module(model_base).Model._calculated) == before
    assert sdk_models.prepare("azure.no_such_sdk._utils.model_base", "azure.no_such_sdk.models") == 0
