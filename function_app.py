"""The Azure Functions app: creates the FunctionApp and registers one Blueprint per capability.

Nothing else lives here. Indexing must be fast and offline (no I/O at import), because the real
host, `func start` and the local host (`tools/funchost`) all import this module to find functions.
"""

import azure.functions as func

from functions import autoscale, consortium, coordination, health, onboarding, ops, rotation, status_http

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

app.register_functions(ops.bp)
app.register_functions(coordination.bp)
app.register_functions(onboarding.bp)
app.register_functions(consortium.bp)
app.register_functions(autoscale.bp)
app.register_functions(health.bp)
app.register_functions(status_http.bp)
app.register_functions(rotation.bp)
