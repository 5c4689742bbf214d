"""``python -m nodeagent.identity --config PATH``: keep one Corda identity's node on this instance, for
as long as this instance holds the identity's tenure (``nodeagent.identity.keeper``).

It runs until SIGTERM or SIGINT (systemd's stop), then stops the node and gives the identity up at once,
so a standby on another instance takes it without waiting for the lease to run out. Exit status: 0 after
a stop asked for; 2 when the configuration (or the ledger's password file) is unusable, naming the key
and the rule. Everything else (storage or the ledger unreachable, a tenure refused) is logged and retried
while it runs: a keeper that cannot reach storage holds no tenure and runs no node.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from nodeagent.config import ConfigError, Credential
from nodeagent.identity.config import KeeperConfig, load
from nodeagent.identity.keeper import Keeper, ProcessNode, Times
from nodeagent.identity.lease import IdentityLease, client_options

log = logging.getLogger("nodeagent.identity")


def _container(config: KeeperConfig, times: Times) -> Any:
    from azure.storage.blob import ContainerClient

    options = client_options(times.call_timeout)
    if config.credential is Credential.SAS:
        return ContainerClient.from_container_url(config.leases_url, **options)
    from azure.identity import ManagedIdentityCredential

    identity = ManagedIdentityCredential(client_id=config.managed_identity_client_id)
    return ContainerClient.from_container_url(config.leases_url, credential=identity, **options)


def _settings(path: Path) -> tuple[KeeperConfig, Times, str]:
    config = load(path)
    try:
        times = Times(**config.times)  # type: ignore[arg-type]  # keys and kinds checked by load()
    except ValueError as error:
        raise ConfigError(f"times: {error}") from None
    try:
        password = config.ledger_password_file.read_text(encoding="utf-8").strip()
    except OSError as error:
        where = config.ledger_password_file
        raise ConfigError(f"ledger_password_file: cannot read {where}: {error.strerror}") from None
    if not password:
        raise ConfigError(f"ledger_password_file: {config.ledger_password_file} is empty")
    return config, times, password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nodeagent.identity",
        description="Keep one Corda identity's node on this instance for as long as this instance holds the "
        "identity's tenure: its blob lease, with the ledger fenced to the lease's token (docs/stateful-nodes.md).",
        epilog="exit status: 0 stopped when asked; 2 the configuration is unusable (the message names the key)",
    )
    parser.add_argument("--config", type=Path, required=True, help="the keeper's TOML file for one identity")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("azure").setLevel(logging.WARNING)
    try:
        config, times, password = _settings(args.config)
    except ConfigError as error:
        log.error("identity keeper: %s", error)
        return 2
    import psycopg

    def ledger() -> Any:
        return psycopg.connect(config.ledger, password=password, autocommit=True, connect_timeout=10)

    lease = IdentityLease(_container(config, times), config.identity, config.holder, times.lease_seconds)
    node = ProcessNode(config.node_command, migrate_command=config.migrate_command)
    keeper = Keeper(lease, ledger, node, times)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info(
        "identity %s: keeper on %s (lease %d s, renewed every %g s, node stopped %g s before a tenure could end)",
        config.identity, config.holder, times.lease_seconds, times.renew_every, times.stop_budget,
    )  # fmt: skip
    keeper.run(stop)
    log.info("identity %s: keeper stopped", config.identity)
    return 0


if __name__ == "__main__":
    sys.exit(main())
