"""Adapters: the only code that builds and calls Azure SDK clients, translating their errors."""
