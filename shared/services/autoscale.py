"""The autoscale tick: read every member scale set's metrics in batches, decide, apply only the changes.

One tick, on the coordinator only (the caller passes its fencing token):
1. the active members' records (their ``scale`` bounds) and every scale set in one paged ARM listing
   (ARM reads refill at 25 per second: no GET per scale set);
2. CPU and transactions per minute through the metrics batch API, at most 50 resources per call,
   grouped by region; a failed or incomplete batch marks its scale sets' data partial or missing, so
   the policy holds them (never scales in) rather than guessing;
3. the pure policy (``shared.decisions.autoscale``) per scale set, with the history stored in
   ``autoscale/state.json``; instances are listed only for the few sets the policy would scale in,
   to count those protected from scale-in;
4. each change written as an absolute capacity with If-Match on the ETag that was listed (a lost race
   is left for the next tick to re-decide), announced as ``scale.changed``, and the history and each
   decision with its inputs and reason stored fenced with the coordinator's token.
A replayed tick finds capacities already at their targets and the history saying so: it changes nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from shared.decisions.autoscale import Change, Decision, History, Observation, Reason, ScalePolicy, decide
from shared.decisions.forecast import KINDS, Profile
from shared.errors import ConflictError, ControlPlaneError, FencedError, TransientError
from shared.naming import scale_set_name
from shared.ports.clock import Clock
from shared.ports.leases import LeaseStore
from shared.ports.metrics import MAX_RESOURCES_PER_BATCH, MetricsBatch, MetricsSource
from shared.ports.queues import MessageSender
from shared.ports.scalesets import ScaleSet, ScaleSets
from shared.ports.state import StateStore
from shared.services.leadership import COORDINATOR, FencedWriter
from shared.services.records import Events, active_members

log = logging.getLogger(__name__)

STATE_PATH = "autoscale/state.json"
CPU = "Percentage CPU"
TPM = "TransactionsPerMinute"
#: Metrics older than this are stale: the set is treated as having no data.
FRESH = timedelta(minutes=3)
WINDOW = timedelta(minutes=5)
GRAIN = timedelta(minutes=1)
RECENT_LIMIT = 100
#: Instance listings a tick may spend on scale-in candidates (ARM reads refill at 25 per second).
MAX_INSTANCE_READS = 50


@dataclass(frozen=True)
class Tick:
    """What one tick did: every decision, keyed by scale set name, and the changes it applied."""

    decisions: dict[str, Decision]
    applied: dict[str, int]
    metrics_calls: int
    arm_reads: int

    @property
    def partial(self) -> bool:
        return any(d.reason in (Reason.MISSING_DATA, Reason.PARTIAL_DATA) for d in self.decisions.values())


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _maybe(text: str | None) -> datetime | None:
    return _when(text) if text else None


def _change_to_json(c: Change) -> dict[str, Any]:
    return {"at": _iso(c.at), "before": c.before, "after": c.after, **({"predicted": True} if c.predicted else {})}


def profile_to_json(p: Profile) -> dict[str, Any] | None:
    """The forecast profile, compactly: per day kind a list of 96 bins, each the kept means (ints) oldest first."""
    if p.since is None:
        return None
    return {
        "since": _iso(p.since),
        "bins": {kind: [list(b) for b in p.bins[kind]] for kind in KINDS} if p.bins else None,
        "open": [_iso(p.open_at), round(p.open_sum, 1), p.open_count] if p.open_at else None,
        "last_at": _iso(p.last_at) if p.last_at else None,
        "error": None if p.error is None else round(p.error, 4),
        "load": None if p.load is None else round(p.load, 4),
        "judged_at": _iso(p.judged_at) if p.judged_at else None,
        "tpm_per_node": None if p.tpm_per_node is None else round(p.tpm_per_node, 2),
    }


def profile_from_json(body: dict[str, Any] | None) -> Profile:
    if not body:
        return Profile()
    bins = body.get("bins")
    opened = body.get("open")
    return Profile(
        since=_maybe(body.get("since")),
        bins={kind: tuple(tuple(int(v) for v in b) for b in bins[kind]) for kind in KINDS} if bins else None,
        open_at=_when(opened[0]) if opened else None,
        open_sum=float(opened[1]) if opened else 0.0,
        open_count=int(opened[2]) if opened else 0,
        last_at=_maybe(body.get("last_at")),
        error=body.get("error"),
        load=body.get("load"),
        judged_at=_maybe(body.get("judged_at")),
        tpm_per_node=body.get("tpm_per_node"),
    )


def history_to_json(h: History) -> dict[str, Any]:
    body: dict[str, Any] = {
        "recommendations": [[_iso(t), r] for t, r in h.recommendations],
        "changes": [_change_to_json(c) for c in h.changes],
        "since": _iso(h.since) if h.since else None,
        "burst_at": _iso(h.burst_at) if h.burst_at else None,
    }
    profile = profile_to_json(h.profile)
    if profile is not None:
        body["profile"] = profile
    return body


def history_from_json(body: dict[str, Any] | None) -> History:
    if not body:
        return History()
    return History(
        recommendations=tuple((_when(t), int(r)) for t, r in body.get("recommendations", [])),
        changes=tuple(
            Change(_when(c["at"]), int(c["before"]), int(c["after"]), bool(c.get("predicted", False)))
            for c in body.get("changes", [])
        ),
        since=_maybe(body.get("since")),
        burst_at=_maybe(body.get("burst_at")),
        profile=profile_from_json(body.get("profile")),
    )


def forecast_to_json(decision: Decision) -> dict[str, Any] | None:
    """What the forecast said with this decision (None with AUTOSCALE_PREDICTIVE=off)."""
    note = decision.forecast
    if note is None:
        return None
    return {
        "mode": note.mode.value, "standing": note.standing.value,
        "nodes": None if note.nodes is None else round(note.nodes, 2),
        "error_nodes": None if note.error is None else round(note.error, 2),
        "relative_error": None if note.relative_error is None else round(note.relative_error, 3),
        "would_target": note.would_target, "would_reason": note.would_reason.value, "acted": note.acted,
    }  # fmt: skip


def latest_point(batch: MetricsBatch, resource_id: str, metric: str, now: datetime) -> tuple[datetime, float] | None:
    """The newest (interval start, value) of one metric for one resource, if fresh enough to act on."""
    for series in batch.series:
        if series.resource_id.lower() == resource_id.lower() and series.metric == metric:
            for point in sorted(series.points, key=lambda p: p.timestamp, reverse=True):
                if point.value is not None:
                    return (point.timestamp, point.value) if now - point.timestamp <= FRESH else None
    return None


def observe(batch: MetricsBatch, scale_set: ScaleSet, now: datetime) -> Observation:
    """What this tick saw of one scale set: its capacity, its newest CPU and TPM, and the minute they average."""
    cpu, tpm = latest_point(batch, scale_set.id, CPU, now), latest_point(batch, scale_set.id, TPM, now)
    stamps = [p[0] for p in (cpu, tpm) if p]
    start = min(stamps) if stamps else None
    if start is not None and now - start < GRAIN:
        # A minute still under way (the emulator answers one, measured as of now): the nodes ready now served it.
        start = None
    return Observation(
        scale_set.capacity, cpu[1] if cpu else None, tpm[1] if tpm else None, partial=cpu is None or tpm is None,
        protected=None, sample_start=start, sample_seconds=GRAIN.total_seconds(),
    )  # fmt: skip


def policy_for(record: dict[str, Any], defaults: ScalePolicy) -> ScalePolicy:
    """The member's bounds from its record over the defaults from settings."""
    bounds = record.get("scale") or {}
    minimum = int(bounds.get("min_nodes", defaults.min_nodes))
    maximum = int(bounds.get("max_nodes", max(defaults.max_nodes, minimum)))
    return replace(defaults, min_nodes=minimum, max_nodes=max(maximum, 1, minimum))


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class Autoscaler:
    state: StateStore
    scalesets: ScaleSets
    metrics: MetricsSource
    queues: MessageSender
    leases: LeaseStore
    clock: Clock
    defaults: ScalePolicy
    workers: int = 4
    #: Protects the instances that run a Corda identity (``services.identities``): called with a scale set's
    #: name before the policy decides, and again just before a scale-in is applied; returns the protection
    #: it changed. A set it fails for, or whose protection changed meanwhile, is not scaled in this tick.
    protect_identities: Callable[[str], Mapping[str, bool]] | None = None

    def __post_init__(self) -> None:
        self.events = Events(self.queues, self.clock)
        self.fenced = FencedWriter(self.state, self.leases)

    def _read_metrics(self, sets: list[ScaleSet], now: datetime) -> tuple[MetricsBatch, int]:
        """Every set's CPU and TPM in batch calls of at most 50 ids per region; a failed call marks its ids missing."""
        by_region: dict[str, list[str]] = defaultdict(list)
        for s in sets:
            by_region[s.location.lower()].append(s.id)
        calls = [chunk for ids in by_region.values() for chunk in _chunks(ids, MAX_RESOURCES_PER_BATCH)]

        def one(ids: list[str]) -> MetricsBatch:
            try:
                return self.metrics.query(ids, [CPU, TPM], window=WINDOW, grain=GRAIN, aggregation="Average", end=now)
            except ControlPlaneError as e:
                log.warning("metrics batch of %d scale set(s) failed: %s; holding them this tick", len(ids), e)
                return MetricsBatch((), tuple(ids))

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            results = list(pool.map(one, calls))
        series = tuple(s for r in results for s in r.series)
        missing = tuple(m for r in results for m in r.missing)
        return MetricsBatch(series, missing), len(calls)

    def _protected(self, name: str) -> int | None:
        try:
            return sum(1 for i in self.scalesets.list_instances(name) if i.protected_from_scale_in)
        except ControlPlaneError as e:
            log.warning("listing instances of %s failed: %s; not scaling it in this tick", name, e)
            return None

    @staticmethod
    def _sync_protection(protect: Callable[[str], Mapping[str, bool]], name: str) -> Mapping[str, bool] | None:
        """Protect ``name``'s identity-running instances: the protection changed, or None when that failed
        (the set is then not scaled in this tick)."""
        try:
            return protect(name)
        except ControlPlaneError as e:
            log.warning("protecting %s's identity instances failed: %s; not scaling it in this tick", name, e)
            return None

    def _protect_identities(self, sets: list[ScaleSet], check: Callable[[], None]) -> set[str]:
        """Protect each set's identity-running instances; the names of the sets where that failed."""
        failed: set[str] = set()
        if self.protect_identities is None:
            return failed
        for scale_set in sets:
            check()
            if self._sync_protection(self.protect_identities, scale_set.name) is None:
                failed.add(scale_set.name)
        return failed

    def _identity_moved(self, name: str) -> bool:
        """Protect ``name``'s identity-running instances again, just before a scale-in: did an identity move
        (or the leases become unreadable) since the policy decided? Then the scale-in waits for a tick that
        decides with the new protection, so it cannot take the instance an identity has just moved to."""
        if self.protect_identities is None:
            return False
        changes = self._sync_protection(self.protect_identities, name)
        if changes:
            moved = ", ".join(f"{i} {'protected' if on else 'released'}" for i, on in sorted(changes.items()))
            log.warning("an identity moved during the tick (%s); scaling %s in waits for the next tick", moved, name)
        return changes is None or bool(changes)

    def tick(self, fencing_token: int, check: Callable[[], None] = lambda: None) -> Tick:
        """One tick with the coordinator's token; ``check`` raises once the term is over (before each write)."""
        now = self.clock.now()
        newest = self.leases.read(COORDINATOR).fencing_token
        if newest > fencing_token:
            raise FencedError(f"autoscale with fencing token {fencing_token} refused: token {newest} is newer")
        members = {r["member_id"]: r for r in active_members(self.state)}
        listed = {s.name: s for s in self.scalesets.list_all()}
        arm_reads = 1
        sets = {
            mid: listed[scale_set_name(mid)]
            for mid in sorted(members)
            if scale_set_name(mid) in listed and listed[scale_set_name(mid)].provisioning_state == "Succeeded"
        }
        if not sets:
            return Tick({}, {}, 0, arm_reads)
        batch, calls = self._read_metrics(list(sets.values()), now)
        stored = self.state.read(STATE_PATH)
        histories = dict((stored.body if stored else {}).get("sets", {}))

        decisions: dict[str, Decision] = {}
        new_histories: dict[str, History] = {}
        candidates: list[tuple[str, Observation, ScalePolicy, History]] = []
        unprotected = self._protect_identities(list(sets.values()), check)
        for mid, scale_set in sets.items():
            policy = policy_for(members[mid], self.defaults)
            obs = observe(batch, scale_set, now)
            if scale_set.name in unprotected:
                obs = replace(obs, protected=None)  # the policy holds scale-in when protection is unknown
            before = history_from_json(histories.get(scale_set.name))
            decisions[scale_set.name], new_histories[scale_set.name] = decide(obs, policy, before, now)
            if decisions[scale_set.name].reason is Reason.PROTECTED and scale_set.name not in unprotected:
                candidates.append((scale_set.name, obs, policy, before))
        # Only a set the policy would scale in costs an instance listing (to count protected instances),
        # and at most MAX_INSTANCE_READS a tick, taking turns, so a fleet-wide drop cannot exhaust ARM reads.
        ticks = int((stored.body if stored else {}).get("ticks", 0))
        start = (ticks * MAX_INSTANCE_READS) % len(candidates) if candidates else 0
        for name, obs, policy, before in (candidates[start:] + candidates[:start])[:MAX_INSTANCE_READS]:
            arm_reads += 1
            obs = replace(obs, protected=self._protected(name))
            decisions[name], new_histories[name] = decide(obs, policy, before, now)

        applied: dict[str, int] = {}
        for mid, scale_set in sets.items():
            decision = decisions[scale_set.name]
            if not decision.changes:
                continue
            check()
            unapplied = decision.target < scale_set.capacity and self._identity_moved(scale_set.name)
            if not unapplied:
                try:
                    self.scalesets.set_capacity(scale_set.name, decision.target, etag=scale_set.etag)
                except (ConflictError, TransientError) as e:
                    # Someone else changed it, or ARM is throttling: the next tick re-reads and re-decides.
                    log.warning("scaling %s to %d not applied: %s", scale_set.name, decision.target, e)
                    unapplied = True
            if unapplied:
                h = new_histories[scale_set.name]
                new_histories[scale_set.name] = replace(h, changes=h.changes[:-1])
                continue
            applied[scale_set.name] = decision.target
            self.events.emit(
                "scale.changed", mid, (scale_set.name, _iso(now), decision.target),
                scale_set_id=scale_set.id, before=scale_set.capacity, after=decision.target,
                reason=decision.reason.value, message=decision.message,
            )  # fmt: skip
            log.info(
                "scaled %s %d → %d: %s", scale_set.name, scale_set.capacity, decision.target, decision.message,
                extra={"fields": {"member_id": mid, "reason": decision.reason.value}},
            )  # fmt: skip

        check()
        self._record(fencing_token, now, sets, decisions, new_histories, applied)
        return Tick(decisions, applied, calls, arm_reads)

    def _record(
        self,
        token: int,
        now: datetime,
        sets: dict[str, ScaleSet],
        decisions: dict[str, Decision],
        histories: dict[str, History],
        applied: dict[str, int],
    ) -> None:
        at = _iso(now)
        members = {s.name: mid for mid, s in sets.items()}

        def change(body: dict[str, Any] | None) -> dict[str, Any]:
            body = dict(body or {})
            stored_sets = dict(body.get("sets", {}))
            last = dict(body.get("last", {}))
            for name, decision in decisions.items():
                stored_sets[name] = history_to_json(histories[name])
                last[name] = {
                    "at": at, "member_id": members[name], "action": decision.action.value,
                    "capacity": applied.get(name, sets[members[name]].capacity), "target": decision.target,
                    "reason": decision.reason.value, "message": decision.message, "desired": decision.desired,
                    "inputs": decision.inputs, "applied": name in applied, "forecast": forecast_to_json(decision),
                }  # fmt: skip
            recent = list(body.get("recent", []))
            recent += [last[name] for name in applied]
            ticks = int(body.get("ticks", 0)) + 1
            return {**body, "updated_at": at, "ticks": ticks, "sets": stored_sets, "last": last,
                    "recent": recent[-RECENT_LIMIT:]}  # fmt: skip

        self.fenced.update(STATE_PATH, token, change)


def forecast_error(decision: dict[str, Any]) -> dict[str, Any] | None:
    """The forecast's averaged error as a stored decision carries it (None with the forecast off or not yet judged)."""
    note = decision.get("forecast")
    if not isinstance(note, dict) or note.get("error_nodes") is None:
        return None
    return {"nodes": note["error_nodes"], "relative": note.get("relative_error"), "standing": note.get("standing"),
            "mode": note.get("mode")}  # fmt: skip


def autoscale_view(state: StateStore) -> dict[str, Any]:
    """The autoscaler's last word per scale set and its recent changes, for status and the dashboard."""
    doc = state.read(STATE_PATH)
    body = doc.body if doc else {}
    return {"updated_at": body.get("updated_at"), "last": body.get("last", {}), "recent": body.get("recent", [])}
