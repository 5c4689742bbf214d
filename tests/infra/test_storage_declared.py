"""The storage the Bicep declares is what the app binds and what `make up` provisions locally."""

from __future__ import annotations

from functools import cache
from typing import Any

from tests import indexed
from tests.infra import bicep
from tools import provision


def _list(variables: dict[str, Any], name: str) -> list[str]:
    """A Bicep list variable, resolving ``concat`` and ``[for x in y: '${x}-suffix']`` one level deep."""
    value = variables[name]["value"]
    if isinstance(value, list):
        return [str(v) for v in value]
    if "function" in value and value["function"]["type"] == "concat":
        found: list[str] = []
        for arg in value["function"]["parameters"].values():
            found += _list(variables, arg) if isinstance(arg, str) else [str(v) for v in arg]
        return found
    loop = value["loop_type"]["detail"]
    item, template = loop["item_name"], value["config"]
    return [template.replace("${" + item + "}", v) for v in _list(variables, loop["array_name"])]


def declared_queues() -> list[str]:
    return _list(bicep.parse("modules/storage.bicep")["variables"], "queues")


@cache
def bindings() -> list[dict[str, Any]]:
    """Every binding of every function, as the host indexes them (``get_functions`` indexes once only)."""
    return [b.get_dict_repr() for f in indexed.functions() for b in f.get_bindings()]


def bound_queues(*kinds: str) -> set[str]:
    """Every queue a function of the app is bound to by a binding of one of ``kinds``."""
    return {b["queueName"] for b in bindings() if b["type"] in kinds}


def test_the_bicep_declares_the_queues_make_up_provisions() -> None:
    assert sorted(declared_queues()) == sorted(provision.QUEUES)
    assert len(set(declared_queues())) == len(declared_queues())


def test_every_queue_the_app_binds_is_declared_with_its_poison_twin() -> None:
    declared = set(declared_queues())
    triggers = bound_queues("queueTrigger")
    assert bound_queues("queue", "queueTrigger") <= declared
    assert {f"{q}-poison" for q in triggers} <= declared
    assert "key-rotation-requests" in declared


def test_the_bicep_declares_the_containers_the_app_uses() -> None:
    declared: set[str] = set()
    for relative in bicep.files():
        for resource in bicep.resources(relative, "Microsoft.Storage/storageAccounts/blobServices/containers").values():
            items = bicep.loop_items(resource)
            if isinstance(items, str):
                declared |= set(_list(bicep.parse(relative)["variables"], items))
            elif isinstance(items, list):
                declared |= set(items)
            else:
                declared.add(bicep.body(resource)["name"])
    assert set(provision.CONTAINERS) <= declared, set(provision.CONTAINERS) - declared
    assert "consortium-public" in declared
