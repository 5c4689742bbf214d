"""The control plane's core: schemas, pure decisions, ports, services and the Azure adapters.

Importable without ``azure.functions`` and free of I/O at import time, so the same code serves the
function app, the CLI, the local tools and the tests. Layers point one way (checked by import-linter,
see ``pyproject.toml``): decisions are pure, services orchestrate through ports, and only
``shared.adapters`` touches Azure SDKs.
"""
