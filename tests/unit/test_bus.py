"""The in-process bus the consortium service announces on: who hears what, and in which order."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from shared.services.bus import Bus


@dataclass(frozen=True)
class Adopted:
    version: int


@dataclass(frozen=True)
class Followed:
    version: int


def test_each_handler_hears_the_events_of_its_kind_in_the_order_it_subscribed() -> None:
    bus, heard = Bus(), []
    bus.subscribe(Adopted, lambda e: heard.append(("first", e.version)))
    bus.subscribe(Followed, lambda e: heard.append(("followed", e.version)))
    bus.subscribe(Adopted, lambda e: heard.append(("second", e.version)))
    bus.publish(Adopted(3))
    bus.publish(Followed(3))
    assert heard == [("first", 3), ("second", 3), ("followed", 3)]


def test_an_event_no_one_listens_to_is_dropped() -> None:
    Bus().publish(Adopted(1))


def test_what_a_handler_raises_is_the_publishers_to_handle() -> None:
    bus = Bus()

    def broken(event: Adopted) -> None:
        raise RuntimeError(f"cannot take version {event.version}")

    bus.subscribe(Adopted, broken)
    with pytest.raises(RuntimeError, match="version 2"):
        bus.publish(Adopted(2))
