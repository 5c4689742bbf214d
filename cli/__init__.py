"""`consortium`: the operators' command line. Each command module exposes ``register(subparsers)``."""
