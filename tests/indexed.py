"""The app's functions as the host indexes them, once per test process.

``FunctionApp.get_functions()`` builds the functions from their decorators each time it is called and
refuses a second build of the same app (every name then looks taken), so every test that needs the
indexed functions asks here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def functions() -> tuple[Any, ...]:
    import function_app

    return tuple(function_app.app.get_functions())
