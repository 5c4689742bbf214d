"""A test app for the local host: each function reports what it saw to the `observed` queue."""

import json
import os
import time

import azure.functions as func
from azure.storage.queue import QueueClient

from shared.adapters.storage import expand_connection_string

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def observe(**fields: object) -> None:
    client = QueueClient.from_connection_string(expand_connection_string(os.environ["AzureWebJobsStorage"]), "observed")
    fields["instance"] = os.environ.get("WEBSITE_INSTANCE_ID")
    fields["at"] = time.time()
    try:
        client.send_message(json.dumps(fields))
    except Exception:
        client.create_queue()
        client.send_message(json.dumps(fields))


@app.queue_trigger(arg_name="msg", queue_name="in-ok", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="out-ok", connection="AzureWebJobsStorage")
def ok(msg: func.QueueMessage, out: func.Out[str]) -> None:
    observe(fn="ok", id=msg.id, dequeue_count=msg.dequeue_count, body=msg.get_body().decode(),
            inserted=msg.insertion_time.isoformat() if msg.insertion_time else None)  # fmt: skip
    out.set(json.dumps({"echo": msg.get_body().decode()}))


@app.queue_trigger(arg_name="msg", queue_name="in-fail", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="out-fail", connection="AzureWebJobsStorage")
def fail(msg: func.QueueMessage, out: func.Out[str]) -> None:
    observe(fn="fail", id=msg.id, dequeue_count=msg.dequeue_count)
    out.set("must never be sent")
    raise RuntimeError("this function always fails")


@app.queue_trigger(arg_name="body", queue_name="in-ret", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="$return", queue_name="out-ret", connection="AzureWebJobsStorage")
def ret(body: str) -> str:
    if body == "boom":
        raise ValueError("asked to fail")
    return body.upper()


@app.queue_trigger(arg_name="msg", queue_name="in-slow", connection="AzureWebJobsStorage")
def slow(msg: func.QueueMessage) -> None:
    observe(fn="slow", phase="started", id=msg.id)
    time.sleep(float(msg.get_body().decode() or "2"))
    observe(fn="slow", phase="finished", id=msg.id)


@app.route(route="echo/{name}", methods=["GET"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"name": req.route_params["name"], "q": req.params.get("q")}),
                             mimetype="application/json")  # fmt: skip


@app.timer_trigger(schedule="%TICK_SCHEDULE%", arg_name="timer", run_on_startup=False)
@app.retry(strategy="fixed_delay", max_retry_count="2", delay_interval="00:00:01")
def tick(timer: func.TimerRequest, context: func.Context) -> None:
    observe(fn="tick", past_due=timer.past_due, retry_count=context.retry_context.retry_count)
    if os.environ.get("TICK_FAILS") == "1":
        raise RuntimeError("tick fails on purpose")
