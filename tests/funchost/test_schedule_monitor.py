"""The schedule monitor's status blob, against Azurite: one catch-up run for missed occurrences."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.blob import BlobServiceClient

from shared.adapters.storage import expand_connection_string
from tools.funchost.ncrontab import Schedule
from tools.funchost.timers import ScheduleMonitor

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 24, 3, 0, 30, tzinfo=UTC)
EVERY_MINUTE = Schedule.parse("0 * * * * *")


@pytest.fixture
def monitor(storage_connection_string: str, unique_name: str) -> ScheduleMonitor:
    service = BlobServiceClient.from_connection_string(expand_connection_string(storage_connection_string))
    service.create_container(unique_name)
    return ScheduleMonitor(service.get_blob_client(unique_name, "timers/host/Host.Functions.tick/status"), EVERY_MINUTE)


def test_a_first_start_records_the_next_occurrence_and_is_not_past_due(monitor: ScheduleMonitor) -> None:
    past_due, status = monitor.check_past_due(NOW)
    assert not past_due
    assert status["Next"] == "2026-11-24T03:01:00+00:00"
    assert monitor.read() == status


def test_a_missed_occurrence_makes_the_next_start_past_due_once(monitor: ScheduleMonitor) -> None:
    monitor.check_past_due(NOW)
    later = NOW + timedelta(minutes=10)  # the host was down through ten occurrences
    past_due, status = monitor.check_past_due(later)
    assert past_due
    after = monitor.record_run(later, status)
    assert after["Last"] == later.isoformat() and after["Next"] == "2026-11-24T03:11:00+00:00"
    assert monitor.check_past_due(later + timedelta(seconds=1))[0] is False, "one catch-up, not one per missed slot"


def test_a_changed_schedule_is_not_taken_for_a_missed_run(monitor: ScheduleMonitor) -> None:
    monitor.blob.upload_blob(
        json.dumps(
            {
                "Last": "2026-11-24T02:00:00+00:00",
                "Next": "2026-11-24T02:00:07+00:00",
                "LastUpdated": "2026-11-24T02:00:00+00:00",
            }
        ),
        overwrite=True,
    )
    past_due, status = monitor.check_past_due(NOW)
    assert not past_due
    assert status["Next"] == "2026-11-24T03:01:00+00:00"
