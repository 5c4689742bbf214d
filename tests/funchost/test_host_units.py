"""The host's pure parts: NCRONTAB, polling back-off, host.json defaults, poison queue names, routes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tools.funchost.config import HostConfigError, load_host_json
from tools.funchost.http import compile_route
from tools.funchost.indexing import IndexingError, index_app
from tools.funchost.ncrontab import Schedule, ScheduleError
from tools.funchost.queues import Backoff, poison_queue_name

NOW = datetime(2026, 11, 24, 3, 0, 7, tzinfo=UTC)  # a Tuesday


@pytest.mark.parametrize(
    ("expression", "expected", "why"),
    [
        (
            "*/10 * * * * *",
            datetime(2026, 11, 24, 3, 0, 10, tzinfo=UTC),
            "every 10 s: the next multiple of ten seconds",
        ),
        ("0 * * * * *", datetime(2026, 11, 24, 3, 1, tzinfo=UTC), "every minute: the top of the next minute"),
        (
            "0 0 3 * * *",
            datetime(2026, 11, 25, 3, 0, tzinfo=UTC),
            "daily at 03:00 when 03:00 has just passed: tomorrow",
        ),
        ("0 30 9 * * 1-5", datetime(2026, 11, 24, 9, 30, tzinfo=UTC), "weekdays at 09:30 on a Tuesday: today"),
        ("0 0 12 * * Sun", datetime(2026, 11, 29, 12, 0, tzinfo=UTC), "day names are accepted (Sunday)"),
        ("0 0 12 * * 7", datetime(2026, 11, 29, 12, 0, tzinfo=UTC), "7 is Sunday too"),
        ("0 0 0 29 Feb *", datetime(2028, 2, 29, tzinfo=UTC), "29 February waits for a leap year"),
        ("5 4 * * *", datetime(2026, 11, 24, 4, 5, tzinfo=UTC), "five fields: no seconds, minute first"),
        # The timer trigger's documented examples (Learn, functions-bindings-timer "NCRONTAB examples").
        ("0 */5 * * * *", datetime(2026, 11, 24, 3, 5, tzinfo=UTC), "once every five minutes"),
        ("0 0 9-17 * * *", datetime(2026, 11, 24, 9, 0, tzinfo=UTC), "once an hour from 9 to 5"),
        ("0 30 9 * Jan Mon", datetime(2027, 1, 4, 9, 30, tzinfo=UTC), "09:30 every Monday in January"),
        (
            "0 0 12 15 * Mon",
            datetime(2027, 2, 15, 12, 0, tzinfo=UTC),
            "day and weekday both restricted: both must match",
        ),
    ],
)
def test_ncrontab_finds_the_next_occurrence(expression: str, expected: datetime, why: str) -> None:
    assert Schedule.parse(expression).next_after(NOW) == expected, why


@pytest.mark.parametrize(
    "expression",
    [
        "* * * *",
        "61 * * * * *",
        "*/0 * * * * *",
        "0 0 0 31 2 * extra",
        "x * * * * *",
        # croniter's extensions NCrontab does not have: last day, no-specific-value, nth weekday, hashed
        "0 0 12 L * *",
        "0 0 12 ? * *",
        "0 0 12 * * Mon#2",
        "H * * * * *",
    ],
)
def test_ncrontab_rejects_malformed_expressions(expression: str) -> None:
    with pytest.raises(ScheduleError):
        Schedule.parse(expression)


def test_sub_minute_schedules_turn_the_schedule_monitor_off() -> None:
    assert Schedule.parse("*/10 * * * * *").fires_more_than_once_a_minute(NOW)
    assert not Schedule.parse("0 * * * * *").fires_more_than_once_a_minute(NOW)


class FixedJitter:
    def uniform(self, a: float, b: float) -> float:
        return 1.0


def test_polling_backs_off_exponentially_to_the_maximum_and_resets_when_messages_arrive() -> None:
    backoff = Backoff(maximum=60.0, rng=FixedJitter())  # type: ignore[arg-type]
    delays = [round(backoff.next(False), 3) for _ in range(13)]
    assert delays == [0.1, 0.2, 0.3, 0.5, 0.9, 1.7, 3.3, 6.5, 12.9, 25.7, 51.3, 60.0, 60.0]
    assert backoff.next(True) == 0.1
    assert round(backoff.next(False), 3) == 0.2


def test_host_json_defaults_follow_the_queues_extension(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text('{"version": "2.0"}')
    config = load_host_json(tmp_path / "host.json", processor_count=1, development=False)
    q = config.queues
    assert (q.batch_size, q.new_batch_threshold, q.max_dequeue_count, q.message_encoding) == (16, 8, 5, "base64")
    assert q.max_polling_interval == timedelta(minutes=1) and q.visibility_timeout == timedelta(0)
    assert load_host_json(tmp_path / "host.json", development=True).queues.max_polling_interval == timedelta(seconds=2)
    assert config.function_timeout == timedelta(minutes=5)


@pytest.mark.parametrize(
    ("queues", "message"),
    [
        ('{"batchSize": 64}', "batchSize=64 must be within 1..32"),
        ('{"maxDequeueCount": 0}', "maxDequeueCount must be at least 1"),
        ('{"messageEncoding": "utf8"}', "messageEncoding must be base64 or none"),
        ('{"maxPollingInterval": "soon"}', "must be a TimeSpan"),
    ],
)
def test_host_json_errors_name_the_key_and_the_rule(tmp_path: Path, queues: str, message: str) -> None:
    (tmp_path / "host.json").write_text(f'{{"version": "2.0", "extensions": {{"queues": {queues}}}}}')
    with pytest.raises(HostConfigError, match=message):
        load_host_json(tmp_path / "host.json")


def test_the_project_host_json_is_valid() -> None:
    config = load_host_json(Path(__file__).resolve().parents[2] / "host.json")
    assert config.queues.message_encoding == "none", "the contract posts messages as plain text"


def test_poison_queues_exist_only_where_the_extension_makes_them() -> None:
    assert poison_queue_name("onboarding-requests") == "onboarding-requests-poison"
    assert poison_queue_name("onboarding-requests-poison") is None
    assert poison_queue_name("q" * 60) is None


def test_routes_match_parameters_optional_parts_and_catch_alls() -> None:
    assert compile_route("members/{member_id}").match("/members/bank-a").groupdict() == {"member_id": "bank-a"}
    assert compile_route("members/{member_id?}").match("/members") is not None
    assert compile_route("files/{*path}").match("/files/a/b").group("path") == "a/b"
    assert compile_route("members/{member_id}").match("/members/a/b") is None


def _app_with_output(tmp_path: Path, module: str, annotation: str) -> Path:
    (tmp_path / f"{module}.py").write_text(
        "import typing\nimport azure.functions as func\n\napp = func.FunctionApp()\n\n\n"
        '@app.queue_trigger(arg_name="msg", queue_name="in-q", connection="AzureWebJobsStorage")\n'
        '@app.queue_output(arg_name="out", queue_name="out-q", connection="AzureWebJobsStorage")\n'
        f"def relay(msg: func.QueueMessage, out: {annotation}) -> None:\n    out.set(msg.get_body().decode())\n"
    )
    return tmp_path


@pytest.mark.parametrize("annotation", ["func.Out[str]", "func.Out[bytes]", "func.Out[typing.List[str]]"])
def test_a_queue_output_annotated_as_the_worker_accepts_is_indexed(tmp_path: Path, annotation: str) -> None:
    module = f"relay_ok_{abs(hash(annotation))}"
    [spec] = index_app(module, _app_with_output(tmp_path, module, annotation), {})
    assert [o["queueName"] for o in spec.outputs] == ["out-q"]


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        # The worker (functions.py validate_function_params) takes typing.List only: list[str] is neither a
        # type nor a typing generic to it.
        ("func.Out[list[str]]", "binding out: invalid non-type annotation"),
        ("func.Out[int]", 'binding out: type of the binding "queue" does not match its Python annotation "int"'),
        ("str", r"binding out: an output binding's annotation must be azure.functions.Out\[...\]"),
    ],
)
def test_a_queue_output_the_worker_would_refuse_is_refused_at_indexing(
    tmp_path: Path, annotation: str, message: str
) -> None:
    module = f"relay_bad_{abs(hash(annotation))}"
    with pytest.raises(IndexingError, match=message):
        index_app(module, _app_with_output(tmp_path, module, annotation), {})


@pytest.mark.parametrize(("returns", "indexed"), [("str", True), ("typing.List[str]", True), ("int", False)])
def test_a_return_value_output_is_checked_against_the_return_annotation(
    tmp_path: Path, returns: str, indexed: bool
) -> None:
    module = f"ret_{abs(hash(returns))}"
    (tmp_path / f"{module}.py").write_text(
        "import typing\nimport azure.functions as func\n\napp = func.FunctionApp()\n\n\n"
        '@app.queue_trigger(arg_name="body", queue_name="in-q", connection="AzureWebJobsStorage")\n'
        '@app.queue_output(arg_name="$return", queue_name="out-q", connection="AzureWebJobsStorage")\n'
        f"def ret(body: str) -> {returns}:\n    return body\n"
    )
    if indexed:
        assert [o["queueName"] for o in index_app(module, tmp_path, {})[0].outputs] == ["out-q"]
    else:
        with pytest.raises(
            IndexingError,
            match='binding \\$return: the return annotation "int" does not match the binding type "queue"',
        ):
            index_app(module, tmp_path, {})
