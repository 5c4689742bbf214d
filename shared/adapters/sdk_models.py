"""Make the Azure SDKs' generated models safe to build from several threads at once.

The generated ``model_base.Model.__new__`` of azure-storage-queue, azure-keyvault-keys and
azure-monitor-querymetrics works out each model class's fields the first time the class is
instantiated, iterating the class ``__dict__`` while it adds attributes to it. Two threads doing that
for one class at the same moment raise ``RuntimeError: dictionary changed size during iteration``
(seen in the chaos suite: the local host's queue listeners all receive their first messages at once
and one of them died on it; the app's own threads can meet it the same way). Doing it once for
every model class at import, in one thread, leaves nothing for the threads to race on.
"""

from __future__ import annotations

import importlib
import threading

#: Each SDK as (its model_base module, the module whose import defines its model classes).
QUEUE = ("azure.storage.queue._generated._utils.model_base", "azure.storage.queue._generated.models")
KEYS = ("azure.keyvault.keys._generated._utils.model_base", "azure.keyvault.keys._generated.models")
METRICS = ("azure.monitor.querymetrics._utils.model_base", "azure.monitor.querymetrics.models")

_lock = threading.Lock()


def prepare(model_base: str, models: str) -> int:
    """Work out the fields of every model class of one SDK (what its first ``__new__`` does); returns
    how many classes. Idempotent; a module this SDK version does not have is skipped (0)."""
    try:
        base = importlib.import_module(model_base)
        importlib.import_module(models)
    except ImportError:
        return 0
    count = 0
    with _lock:
        todo = list(base.Model.__subclasses__())
        while todo:
            cls = todo.pop()
            todo.extend(cls.__subclasses__())
            cls.__new__(cls)  # fills the class's field tables; the instance is dropped
            count += 1
    return count
