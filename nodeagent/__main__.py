"""``python -m nodeagent [--config PATH]``: one run, as the systemd timer starts it (see ``nodeagent``).

Exit status: 0 when the run completed (refusals are logged, not failures: a document that does not
verify changes nothing and is the publisher's to fix); 1 when the container could not be read now
(the next run tries again; nothing was changed); 2 when the configuration or the agent's own state is
unusable (an operator must act). One log line per run says what it did; one per refusal says why.

Before the run, the agent offers the node's own ``NodeInfo`` file to its member's inbox
(``nodeagent.inbox``, when ``inbox_url`` is set), with a log line when it sent something; an inbox
it cannot write now is a warning, and the run goes on: what the node reads does not depend on it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from nodeagent.config import DEFAULT_PATH, ConfigError, load
from nodeagent.container import BlobContainer, BlobInbox, Unavailable
from nodeagent.disk import StateError
from nodeagent.inbox import Offered, offer
from nodeagent.run import run_once

log = logging.getLogger("nodeagent")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nodeagent", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_PATH, help=f"the agent's config (default {DEFAULT_PATH})"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("azure").setLevel(logging.WARNING)
    try:
        config = load(args.config)
        if config.inbox_url:
            try:
                offered = offer(config, BlobInbox.from_config(config), now=datetime.now(UTC))
                if offered.outcome in (Offered.UPLOADED, Offered.REFRESHED):
                    log.info("%s", offered.line())
                elif offered.outcome is Offered.TOO_LARGE:
                    log.warning("%s: larger than a NodeInfo file can be", offered.line())
            except (Unavailable, OSError) as error:
                log.warning("nodeagent: own node info not offered: %s", error)
        report = run_once(config, BlobContainer.from_config(config), now=lambda: datetime.now(UTC), log=log.warning)
    except (ConfigError, StateError) as error:
        log.error("nodeagent: %s", error)
        return 2
    except Unavailable as error:
        log.error("nodeagent: nothing changed: %s", error)
        return 1
    log.info("%s", report.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
