"""Every binding shape the local host runs, in the shapes of the Python worker's own end-to-end apps
(Azure/azure-functions-python-worker ``tests/endtoend/queue_functions/queue_functions_stein`` and
``tests/endtoend/blob_functions/blob_functions_stein``): HTTP in → queue out, queue in → blob out,
HTTP in + blob in → HTTP out, a timer → queue out, and the failures that must send nothing.

``BLOBS`` (a setting) names the container, so each test has its own.
"""

import json
import typing

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
CONNECTION = "AzureWebJobsStorage"


# -- HTTP in, queue out (put_queue, put_queue_return, put_queue_multiple_out, put_queue_return_multiple) ----
@app.route(route="put_queue", methods=["POST"])
@app.queue_output(arg_name="msg", queue_name="in-text", connection=CONNECTION)
def put_queue(req: func.HttpRequest, msg: func.Out[str]) -> str:
    msg.set(req.get_body().decode())
    return "OK"


@app.route(route="put_queue_return", methods=["POST"], binding_arg_name="resp")
@app.queue_output(arg_name="$return", queue_name="in-message", connection=CONNECTION)
def put_queue_return(req: func.HttpRequest, resp: func.Out[str]) -> bytes:
    return req.get_body()  # resp is never set: the caller gets an empty 200


@app.route(route="put_queue_multiple_out", methods=["POST"], binding_arg_name="resp")
@app.queue_output(arg_name="msgs", queue_name="out-many", connection=CONNECTION)
def put_queue_multiple_out(
    req: func.HttpRequest,
    resp: func.Out[func.HttpResponse],
    msgs: func.Out[typing.List[str]],  # noqa: UP006
) -> None:
    data = req.get_body().decode()
    msgs.set([f"{data}-1", f"{data}-2", f"{data}-3"])
    resp.set(func.HttpResponse(body=f"HTTP response: {data}", status_code=201, headers={"X-Seen": data}))


@app.route(route="put_queue_then_fail", methods=["POST"])
@app.queue_output(arg_name="msg", queue_name="out-never", connection=CONNECTION)
@app.blob_output(arg_name="blob", path="%BLOBS%/never.txt", connection=CONNECTION)
def put_queue_then_fail(req: func.HttpRequest, msg: func.Out[str], blob: func.Out[str]) -> func.HttpResponse:
    msg.set("must never be sent")
    blob.set("must never be written")
    raise RuntimeError("fails after setting its outputs")


# -- queue in (QueueMessage, str, bytes), blob out ($return and Out) --------------------------------------
@app.queue_trigger(arg_name="msg", queue_name="in-message", connection=CONNECTION)
@app.blob_output(arg_name="$return", path="%BLOBS%/message/{id}.json", connection=CONNECTION)
def queue_message(msg: func.QueueMessage) -> str:
    return json.dumps({
        "id": msg.id,
        "body": msg.get_body().decode("utf-8"),
        "expiration_time": msg.expiration_time.isoformat() if msg.expiration_time else None,
        "insertion_time": msg.insertion_time.isoformat() if msg.insertion_time else None,
        "time_next_visible": msg.time_next_visible.isoformat() if msg.time_next_visible else None,
        "pop_receipt": msg.pop_receipt,
        "dequeue_count": msg.dequeue_count,
    })  # fmt: skip


@app.queue_trigger(arg_name="body", queue_name="in-text", connection=CONNECTION)
@app.blob_output(arg_name="out", path="%BLOBS%/text/{queueTrigger}.txt", connection=CONNECTION)
def queue_text(body: str, out: func.Out[str]) -> None:
    out.set(f"{type(body).__name__}:{body}")


@app.queue_trigger(arg_name="body", queue_name="in-bytes", connection=CONNECTION, data_type="BINARY")
@app.blob_output(arg_name="$return", path="%BLOBS%/bytes/{Id}.bin", connection=CONNECTION)
def queue_bytes(body: bytes) -> bytes:
    return type(body).__name__.encode() + b":" + body


@app.queue_trigger(arg_name="msg", queue_name="in-json", connection=CONNECTION)
@app.blob_output(arg_name="out", path="%BLOBS%/json/{member.name}-{DequeueCount}.txt", connection=CONNECTION)
def queue_json(msg: func.QueueMessage, out: func.Out[bytes]) -> None:
    out.set(msg.get_body())


# -- HTTP in, blob in (InputStream, str, bytes; missing), HTTP out ------------------------------------------
@app.route(route="blob/stream/{*path}", methods=["GET"])
@app.blob_input(arg_name="file", path="%BLOBS%/{path}", connection=CONNECTION)
def get_blob_stream(req: func.HttpRequest, file: func.InputStream) -> func.HttpResponse:
    if file is None:
        return func.HttpResponse("no such blob", status_code=404)
    return func.HttpResponse(file.read(), mimetype="application/octet-stream")


@app.route(route="blob/str/{*path}", methods=["GET"])
@app.blob_input(arg_name="file", path="%BLOBS%/{path}", connection=CONNECTION, data_type="STRING")
def get_blob_str(req: func.HttpRequest, file: str) -> str:
    return f"{type(file).__name__}:{file}"


@app.route(route="blob/bytes/{*path}", methods=["GET"])
@app.blob_input(arg_name="file", path="%BLOBS%/{path}", connection=CONNECTION, data_type="BINARY")
def get_blob_bytes(req: func.HttpRequest, file: bytes) -> func.HttpResponse:
    return func.HttpResponse(type(file).__name__.encode() + b":" + (file or b""))


@app.route(route="blob/put/{name}", methods=["PUT"], binding_arg_name="resp")
@app.blob_output(arg_name="$return", path="%BLOBS%/put/{name}", connection=CONNECTION, data_type="BINARY")
def put_blob(req: func.HttpRequest, resp: func.Out[func.HttpResponse]) -> bytes:
    resp.set(func.HttpResponse(status_code=204))
    return req.get_body()


@app.route(route="echo", methods=["POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.get_body(), headers={"X-Length": str(len(req.get_body()))})


# -- a timer, queue out ---------------------------------------------------------------------------------------
@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True)
@app.queue_output(arg_name="$return", queue_name="out-timer", connection=CONNECTION)
def timer_out(timer: func.TimerRequest) -> typing.List[str]:  # noqa: UP006
    return ["tick", json.dumps({"past_due": timer.past_due})]
