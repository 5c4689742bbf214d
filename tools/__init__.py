"""Development tooling: the local stack (Azurite, the Azure emulator, the local Functions host) and the demo.

Nothing here is deployed (see ``.funcignore``); the function app never imports it.
"""
