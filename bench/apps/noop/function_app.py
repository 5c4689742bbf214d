"""A no-op queue function: measures what the local host itself costs per message."""

import azure.functions as func

app = func.FunctionApp()


@app.queue_trigger(arg_name="msg", queue_name="bench-noop", connection="AzureWebJobsStorage")
def noop(msg: func.QueueMessage) -> None:
    return None
