"""A test app with the host's default base64 message encoding."""

import azure.functions as func

app = func.FunctionApp()


@app.queue_trigger(arg_name="body", queue_name="in-b64", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="$return", queue_name="out-b64", connection="AzureWebJobsStorage")
def decode(body: str) -> str:
    return f"got {body}"
