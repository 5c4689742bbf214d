"""A local stand-in for the Azure Functions host, for machines where Core Tools cannot be installed.

``python -m tools.funchost`` indexes ``function_app.py`` with ``app.get_functions()`` and runs its
queue, timer and HTTP triggers with the semantics of the real host and its Storage queues and timer
extensions, and their queue, blob and HTTP bindings as the Python worker binds them (see the module
docstrings for the source of each rule). A binding or parameter shape it does not run is refused at
start, with one line naming the function and the binding. It is a development tool: the same app runs
unchanged under ``func start`` and in Azure.
"""
