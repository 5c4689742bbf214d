"""Every binding shape the local host runs, end to end on Azurite: what arrives where, byte for byte.

The app (``apps/bindings``) follows the Python worker's own end-to-end apps, and each test the
behaviour it checks in the worker or the host:
- outputs are encoded after the function returns and sent only for a successful invocation
  (worker ``dispatcher._handle__invocation_request``: ``output_data`` is built after the call, a failure
  returns a ``StatusResult.Failure`` with none);
- the HTTP response is the ``http`` output, ``$return`` or the one named by ``binding_arg_name``
  (worker e2e ``test_queue_return_multiple_outparam``: 'HTTP response: foo'), an empty 200 when none is
  set (host ``FunctionInvocationMiddleware``: ``return new OkResult()``; worker e2e
  ``test_queue_message_object_return``);
- ``Out[typing.List[str]]`` sends one message an item (host ``FunctionBinding.ReadAsEnumerable``);
- queue trigger metadata reaches ``func.QueueMessage`` (worker e2e ``test_queue_basic`` asserts each of
  id, expiration_time, insertion_time, time_next_visible, pop_receipt, dequeue_count is set);
- a blob input that does not exist binds None (``BlobConverter.decode``: ``data.type is None``), one with
  ``dataType`` STRING/BINARY binds ``str``/``bytes`` (worker e2e ``get_blob_as_str``, ``get_blob_as_bytes``);
- blob paths bind ``{queueTrigger}``, ``{Id}``, ``{DequeueCount}``, route parameters and JSON properties
  (WebJobs SDK ``BindingTemplate``, ``QueueTriggerBinding.CreateBindingData``).
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import datetime

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient

from shared.adapters.storage import expand_connection_string

from .conftest import RunningHost, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("clean_queues")]


@pytest.fixture
def container(storage_connection_string: str) -> ContainerClient:
    name = f"bindings-{uuid.uuid4().hex[:10]}"
    service = BlobServiceClient.from_connection_string(expand_connection_string(storage_connection_string))
    return service.get_container_client(name)


@pytest.fixture
def host(start_host: Callable[..., RunningHost], container: ContainerClient) -> RunningHost:
    return start_host("bindings", settings={"BLOBS": container.container_name})


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers.items()), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers.items()), e.read()


def blob(container: ContainerClient, name: str) -> bytes | None:
    try:
        return bytes(container.get_blob_client(name).download_blob().readall())
    except ResourceNotFoundError:
        return None


def blobs_under(container: ContainerClient, prefix: str) -> list[str]:
    try:
        return [b.name for b in container.list_blobs(name_starts_with=prefix)]
    except ResourceNotFoundError:
        return []


def test_an_http_function_sends_its_named_queue_output_and_answers_from_return(host: RunningHost, container) -> None:
    status, headers, body = request(host.port, "POST", "/api/put_queue", b"caf\xc3\xa9 au lait")
    assert (status, body) == (200, b"OK")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    # put_queue -> in-text -> queue_text, which writes the body it got, named by {queueTrigger}
    written = wait_for(lambda: blob(container, "text/café au lait.txt"), what="the blob queue_text writes")
    assert written == "str:café au lait".encode()


def test_a_return_queue_output_is_sent_and_an_unset_http_output_answers_an_empty_200(
    host: RunningHost, container
) -> None:
    status, _, body = request(host.port, "POST", "/api/put_queue_return", b"by return")
    assert (status, body) == (200, b"")
    [name] = wait_for(lambda: blobs_under(container, "message/"), what="the metadata blob")
    seen = json.loads(blob(container, name) or b"{}")
    assert name == f"message/{seen['id']}.json", "the blob path binds {id} from the trigger metadata"
    assert seen["body"] == "by return" and seen["dequeue_count"] == 1 and seen["pop_receipt"]
    inserted, expires, visible = (datetime.fromisoformat(seen[k]) for k in
                                  ("insertion_time", "expiration_time", "time_next_visible"))  # fmt: skip
    assert inserted.utcoffset() is not None and inserted < visible < expires
    assert (expires - inserted).days == 7, "Azurite keeps a message 7 days by default, as Storage does"


def test_a_list_output_sends_one_message_an_item_and_the_named_http_output_answers(host: RunningHost) -> None:
    status, headers, body = request(host.port, "POST", "/api/put_queue_multiple_out", b"foo")
    assert (status, body, headers["X-Seen"]) == (201, b"HTTP response: foo", "foo")
    assert _drain_all(host, "out-many", 3) == ["foo-1", "foo-2", "foo-3"], "one message an item, in order"


def _drain_all(host: RunningHost, queue: str, count: int) -> list[str]:
    got: list[str] = []
    wait_for(lambda: got.extend(host.drain(queue)) or len(got) >= count, what=f"{count} messages on {queue}")
    return got


def test_a_failed_http_invocation_answers_500_and_sends_nothing(host: RunningHost, container) -> None:
    status, _, _ = request(host.port, "POST", "/api/put_queue_then_fail", b"x")
    assert status == 500
    request(host.port, "POST", "/api/put_queue", b"after")  # a later success, to know the host moved on
    wait_for(lambda: blob(container, "text/after.txt"), what="the later success")
    assert host.drain("out-never") == [] and blob(container, "never.txt") is None


def test_a_bytes_queue_trigger_gets_bytes_and_its_return_blob_is_named_by_the_message_id(
    host: RunningHost, container
) -> None:
    host.send("in-bytes", "raw body")
    [name] = wait_for(lambda: blobs_under(container, "bytes/"), what="the bytes blob")
    assert blob(container, name) == b"bytes:raw body"
    assert uuid.UUID(name.removeprefix("bytes/").removesuffix(".bin")), "{Id} is the message id"


def test_a_json_message_binds_its_properties_into_the_blob_path(host: RunningHost, container) -> None:
    body = json.dumps({"member": {"name": "bank-a"}, "n": 1})
    host.send("in-json", body)
    written = wait_for(lambda: blob(container, "json/bank-a-1.txt"), what="the blob named from the JSON body")
    assert written == body.encode()


def test_blob_inputs_bind_as_stream_str_and_bytes_and_a_missing_blob_as_none(host: RunningHost, container) -> None:
    status, _, _ = request(host.port, "PUT", "/api/blob/put/a.bin", b"\x00\xffpayload")
    assert status == 204
    assert blob(container, "put/a.bin") == b"\x00\xffpayload"
    assert request(host.port, "GET", "/api/blob/stream/put/a.bin")[::2] == (200, b"\x00\xffpayload")
    assert request(host.port, "GET", "/api/blob/bytes/put/a.bin")[::2] == (200, b"bytes:\x00\xffpayload")
    request(host.port, "PUT", "/api/blob/put/t.txt", "été".encode())
    assert request(host.port, "GET", "/api/blob/str/put/t.txt")[::2] == (200, "str:été".encode())
    assert request(host.port, "GET", "/api/blob/stream/put/missing")[::2] == (404, b"no such blob")
    assert request(host.port, "GET", "/api/blob/str/put/missing")[::2] == (200, b"NoneType:None")


def test_a_timer_function_sends_its_return_queue_output(host: RunningHost) -> None:
    assert _drain_all(host, "out-timer", 2) == ["tick", '{"past_due": false}']


# -- the HTTP front end (the chaos suite's HTTP_CASES check the rest of the malformed-request answers) --------
def _raw(port: int, data: bytes, *, reads: int = 1) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        got = b""
        while got.count(b"HTTP/1.1 ") < reads or not _complete(got):
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:  # the server answered and closed while the request was still coming
                break
            if not chunk:
                break
            got += chunk
        return got


def _complete(got: bytes) -> bool:
    head, sep, rest = got.rpartition(b"\r\n\r\n")
    if not sep:
        return False
    length = [int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")]
    return not length or len(rest) >= length[-1]


def test_a_chunked_body_is_read_whole_and_the_connection_kept_for_the_next_request(host: RunningHost) -> None:
    chunked = (b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")  # fmt: skip
    plain = b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    got = _raw(host.port, chunked + plain, reads=2)
    first, second = got.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200") and b"X-Length: 11" in first and first.endswith(b"hello world")
    assert second.startswith(b"200") and b"X-Length: 3" in second and second.endswith(b"abc")


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n", b"400"),
        (b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 104857601\r\n\r\n", b"413"),
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET /api/echo HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 33 * 1024 + b"\r\n\r\n", b"431"),
        (b"GET /api/echo HTTP/2.0\r\nHost: x\r\n\r\n", b"505"),
        (b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"400"),
    ],
    ids=[
        "length not a number",
        "over the 100 MB limit",
        "no request line",
        "headers over 32 KB",
        "HTTP/2 over plain text",
        "a broken chunked body",
    ],
)
def test_malformed_requests_get_a_status_line_with_the_hosts_code(host: RunningHost, raw: bytes, status: bytes) -> None:
    answer = _raw(host.port, raw)
    assert answer.startswith(b"HTTP/1.") and answer.split(b" ")[1] == status, answer[:200]
