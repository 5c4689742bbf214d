"""What the local host does not run, it refuses at start: one line naming the function and the binding.

The checks are the worker's load-time ones (Azure/azure-functions-python-worker ``functions.py``
``Registry.validate_function_params``, ``get_function_return_type``; its ``tests/unittests/
test_broken_functions.py`` expects 'type of req binding ... does not match its Python annotation') plus
what this host runs: the triggers and bindings it has listeners and deliveries for, blob paths it can
bind, and the str/bytes shapes whose value would not match the annotation.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tools.funchost.indexing import IndexingError, index_app

from .conftest import ROOT

HEADER = (
    "import typing\nimport azure.functions as func\n\n"
    "app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)\n\n\n"
)


def _index(tmp_path: Path, body: str) -> None:
    module = f"refused_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(HEADER + body)
    index_app(module, tmp_path, {})


REFUSED = [
    (
        "a blob trigger",
        '@app.blob_trigger(arg_name="b", path="c/{name}", connection="AzureWebJobsStorage")\n'
        "def f(b: func.InputStream) -> None:\n    pass\n",
        "function f, binding b: blobTrigger is not run by the local host",
    ),
    (
        "an Event Hubs trigger",
        '@app.event_hub_message_trigger(arg_name="e", event_hub_name="h", connection="C")\n'
        "def f(e: func.EventHubEvent) -> None:\n    pass\n",
        "function f, binding e: eventHubTrigger is not run by the local host",
    ),
    (
        "a table input",
        '@app.route(route="t")\n@app.table_input(arg_name="row", table_name="t", connection="C")\n'
        "def f(req: func.HttpRequest, row: str) -> str:\n    return row\n",
        "function f, binding row: table in bindings are not run by the local host",
    ),
    (
        "a blob input annotated str without data_type STRING",
        '@app.route(route="t")\n@app.blob_input(arg_name="file", path="c/x", connection="AzureWebJobsStorage")\n'
        "def f(req: func.HttpRequest, file: str) -> str:\n    return file\n",
        'function f, binding file: a blob input annotated str needs data_type="STRING"',
    ),
    (
        "a queue trigger annotated bytes without data_type BINARY",
        '@app.queue_trigger(arg_name="m", queue_name="q", connection="AzureWebJobsStorage")\n'
        "def f(m: bytes) -> None:\n    pass\n",
        'function f, binding m: a queue trigger annotated bytes needs data_type="BINARY"',
    ),
    (
        "an HTTP trigger annotated str",
        '@app.route(route="t")\ndef f(req: str) -> str:\n    return req\n',
        "function f, binding req: a httpTrigger parameter cannot be str or bytes",
    ),
    (
        "an HTTP trigger annotated int (the worker's own broken-function case)",
        '@app.route(route="t")\ndef f(req: int) -> str:\n    return ""\n',
        'function f, binding req: type of the binding "httpTrigger" does not match its Python annotation "int"',
    ),
    (
        "a parameter no binding names",
        '@app.route(route="t")\ndef f(req: func.HttpRequest, extra: str) -> str:\n    return ""\n',
        "function f: parameters declared in Python but not as bindings: \\['extra'\\]",
    ),
    (
        "an input annotated Out",
        '@app.route(route="t")\n@app.blob_input(arg_name="file", path="c/x", connection="AzureWebJobsStorage")\n'
        "def f(req: func.HttpRequest, file: func.Out[bytes]) -> str:\n    return ''\n",
        "function f, binding file: an input binding's annotation must not be azure.functions.Out",
    ),
    (
        "a blob path a timer cannot bind",
        '@app.timer_trigger(arg_name="t", schedule="0 0 0 1 1 *")\n'
        '@app.blob_output(arg_name="out", path="c/{name}.txt", connection="AzureWebJobsStorage")\n'
        "def f(t: func.TimerRequest, out: func.Out[str]) -> None:\n    pass\n",
        "function f, binding out: Unable to resolve binding parameter 'name'",
    ),
    (
        "a date format in a blob path",
        '@app.queue_trigger(arg_name="m", queue_name="q", connection="AzureWebJobsStorage")\n'
        '@app.blob_output(arg_name="out", path="c/{DateTime:yyyy}.txt", connection="AzureWebJobsStorage")\n'
        "def f(m: str, out: func.Out[str]) -> None:\n    pass\n",
        "function f, binding out: binding expression {DateTime:yyyy} is not supported by the local host",
    ),
    (
        "a blob path without a container",
        '@app.queue_trigger(arg_name="m", queue_name="q", connection="AzureWebJobsStorage")\n'
        '@app.blob_output(arg_name="out", path="just-a-name", connection="AzureWebJobsStorage")\n'
        "def f(m: str, out: func.Out[str]) -> None:\n    pass\n",
        "function f, binding out: blob path 'just-a-name' must be container/blob",
    ),
    (
        "a return annotation its output cannot take",
        '@app.queue_trigger(arg_name="m", queue_name="q", connection="AzureWebJobsStorage")\n'
        '@app.blob_output(arg_name="$return", path="c/x", connection="AzureWebJobsStorage")\n'
        "def f(m: str) -> int:\n    return 1\n",
        'function f, binding \\$return: the return annotation "int" does not match the binding type "blob"',
    ),
]


@pytest.mark.parametrize(("body", "reason"), [row[1:] for row in REFUSED], ids=[row[0] for row in REFUSED])
def test_an_unsupported_shape_is_refused_at_indexing_with_its_reason(tmp_path: Path, body: str, reason: str) -> None:
    with pytest.raises(IndexingError, match=reason) as refused:
        _index(tmp_path, body)
    assert "\n" not in str(refused.value), "one line"


def test_the_shapes_the_host_runs_are_indexed(tmp_path: Path) -> None:
    module = f"shapes_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text((ROOT / "tests/funchost/apps/bindings/function_app.py").read_text())
    specs = index_app(module, tmp_path, {"BLOBS": "c"})
    assert {s.name: s.trigger_type for s in specs}["timer_out"] == "timerTrigger"
    assert len(specs) == 14, "every function of the bindings app"


def test_the_host_refuses_to_start_before_taking_a_message(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(
        HEADER + '@app.queue_trigger(arg_name="m", queue_name="q", connection="AzureWebJobsStorage")\n'
        "def ok(m: str) -> None:\n    pass\n\n\n"
        '@app.blob_trigger(arg_name="b", path="c/{name}", connection="AzureWebJobsStorage")\n'
        "def uploaded(b: func.InputStream) -> None:\n    pass\n"
    )
    # No storage at all: a host that got as far as polling would fail differently, and later.
    done = subprocess.run(
        [sys.executable, "-m", "tools.funchost", "--app-dir", str(tmp_path), "--no-http"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "funchost: refused to start: function uploaded, binding b: blobTrigger is not run by the local host "
        "(it runs queueTrigger, timerTrigger, httpTrigger)"
    )
