"""Small Protocols for what the core needs from the outside world, one module per capability.

Each port speaks the project's own dataclasses, never SDK models. Each has an Azure adapter in
``shared.adapters`` and an in-memory fake in ``shared.fakes`` that tests assert on.
"""
