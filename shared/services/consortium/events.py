"""What the consortium service announces in process (on its ``Bus``), for whoever listens."""

from __future__ import annotations

from dataclasses import dataclass

from shared.decisions import chain


@dataclass(frozen=True)
class VersionAdopted:
    """A version verified and stored by this member (after the genesis), as it is adopted."""

    version: chain.Trusted


@dataclass(frozen=True)
class ChainFollowed:
    """The verified chain at the end of a tick: a listener checks that what it keeps agrees with it."""

    versions: tuple[chain.Trusted, ...]
