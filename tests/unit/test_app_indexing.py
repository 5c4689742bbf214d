"""The app indexes as the host would: unique names, one trigger each, every setting it names exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shared import settings
from tests import indexed
from tools.funchost.ncrontab import Schedule

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]


@pytest.fixture(scope="module")
def functions():  # type: ignore[no-untyped-def]
    return indexed.functions()


def test_every_function_has_a_unique_name(functions) -> None:  # type: ignore[no-untyped-def]
    names = [f.get_function_name() for f in functions]
    assert len(names) == len(set(names)), names


def test_every_function_has_exactly_one_trigger(functions) -> None:  # type: ignore[no-untyped-def]
    for f in functions:
        triggers = [b for b in f.get_bindings() if b.type.endswith("Trigger")]
        assert len(triggers) == 1, f.get_function_name()


def test_every_connection_and_setting_placeholder_is_in_the_sample_settings(functions) -> None:  # type: ignore[no-untyped-def]
    for f in functions:
        for binding in f.get_bindings_dict()["bindings"]:
            if "connection" in binding:
                assert binding["connection"] in SAMPLE, (f.get_function_name(), binding["connection"])
            for value in binding.values():
                for placeholder in re.findall(r"%([^%]+)%", str(value)):
                    assert placeholder in SAMPLE, (f.get_function_name(), placeholder)


def test_timer_schedules_are_six_field_ncrontab(functions) -> None:  # type: ignore[no-untyped-def]
    for f in functions:
        for binding in f.get_bindings_dict()["bindings"]:
            if binding["type"] != "timerTrigger":
                continue
            schedule = binding["schedule"]
            match = re.fullmatch(r"%([^%]+)%", schedule)
            if match:
                schedule = SAMPLE[match.group(1)]
            assert len(schedule.split()) == 6, (f.get_function_name(), schedule)
            Schedule.parse(schedule)  # raises ScheduleError naming the field and the rule


def test_the_sample_settings_hold_exactly_the_registered_settings() -> None:
    assert settings.local_defaults() == SAMPLE


def test_a_missing_required_setting_is_named_in_the_error() -> None:
    s = settings.Settings({})
    with pytest.raises(settings.SettingError, match="AzureWebJobsStorage"):
        s.text("AzureWebJobsStorage")


def test_a_malformed_number_names_the_setting_and_the_rule() -> None:
    s = settings.Settings({"LEASE_SECONDS": "soon"})
    with pytest.raises(settings.SettingError, match=r"LEASE_SECONDS.*whole number"):
        s.integer("LEASE_SECONDS")
    with pytest.raises(settings.SettingError, match=r"at most 60"):
        settings.Settings({"LEASE_SECONDS": "90"}).integer("LEASE_SECONDS", maximum=60)
