"""One run of the agent: verify what is new, then make ``additional-node-infos`` what the chain admits.

In order, each step only from what verified before it:
1. the chain: the versions the agent verified before (its own disk, verified again from the pinned
   genesis with ``chain.NodeTrust``, so a state written for another genesis is refused), then
   ``chain/{N+1}.json``, ``chain/{N+2}.json``... from the container until one is absent or does not
   verify; what verifies is stored, never replaced: the agent never goes back to an older head;
2. the admitted members: exactly those the verified head lists (a member removed or gone drops out);
3. each admitted member's node-info index, verified with the governance key the head lists for it,
   and the files it lists, each checked against its SHA-256; a member whose index or files do not
   verify (or are not there yet) keeps the files it had, and nothing else changes;
4. the directory: written and pruned to exactly the wanted files (``node_infos.plan``); the node is
   left running, since Corda picks up added and removed files by itself;
5. the member's own flag day: a restart is requested only when ``node_infos.decide_restart`` says so.
A read that fails now (``Unavailable``) ends the run before the directory is touched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from nodeagent.config import AgentConfig
from nodeagent.container import Container, TooLarge
from nodeagent.disk import AgentState, NodeInfosDir, StateDir, StateError, chain_file
from shared import verification
from shared.decisions import chain, node_infos
from shared.decisions.node_infos import NodeInfoError, Rule

#: At most this many new versions are verified in one run (the rest on the next).
MAX_VERSIONS_PER_RUN = 500


def chain_path(version: int) -> str:
    """Where the control plane publishes a verified version (``shared.services.consortium.chain_path``)."""
    return f"chain/{version:08d}.json"


@dataclass(frozen=True)
class Refusal:
    where: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"refused {self.where} ({self.rule}): {self.message}"


@dataclass
class Report:
    """What a run did, for its one log line (and for the tests)."""

    version: int | None = None
    hash: str | None = None
    adopted: int = 0
    admitted: tuple[str, ...] = ()
    written: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    #: Everything not taken this run, with its rule; ``missing`` ones are waited for, not refused.
    refused: list[Refusal] = field(default_factory=list)
    restart: node_infos.RestartDecision | None = None

    @property
    def waiting(self) -> list[Refusal]:
        """What a verified document lists (or a member's index) that is not published yet."""
        return [r for r in self.refused if r.rule == Rule.MISSING.value]

    @property
    def rejected(self) -> list[Refusal]:
        """What was read and does not verify: each gets a log line of its own."""
        return [r for r in self.refused if r.rule != Rule.MISSING.value]

    def line(self) -> str:
        if self.version is None:
            head = "no verified chain yet"
        else:
            head = f"chain version {self.version} ({(self.hash or '')[:12]}), {self.adopted} new"
        restart = self.restart
        parts = [
            head,
            f"admitted {', '.join(self.admitted) or 'none'}",
            f"node infos: {len(self.written)} written, {len(self.removed)} removed, {len(self.unchanged)} unchanged",
            f"{len(self.rejected)} refused, {len(self.waiting)} waiting"
            + (f" ({', '.join(r.where for r in self.waiting)})" if self.waiting else ""),
            f"restart: {'requested' if restart and restart.restart else 'no'}"
            f" ({restart.reason.value if restart else 'no chain'}: {restart.message if restart else ''})",
        ]
        return "nodeagent: " + "; ".join(parts)


def trust_from_disk(config: AgentConfig, state: StateDir) -> chain.NodeTrust:
    """The versions this agent verified before, verified again from the pinned genesis (no download)."""
    trust = chain.NodeTrust(config.genesis, check=verification.check_on_cores)
    stored = list(state.versions())
    accepted = verification.accept_all(trust, stored)  # the next one read while the ones before are checked
    if accepted != len(stored):
        raise StateError(
            f"{state.chain_dir / chain_file(accepted)} does not verify from the pinned genesis "
            f"({trust.errors[-1].rule.value}): {trust.refused[-1]}"
        )
    return trust


def follow(trust: chain.NodeTrust, container: Container, state: StateDir, report: Report) -> None:
    """Verify and store the versions after the trusted head, until one is absent or refused."""
    for _ in range(MAX_VERSIONS_PER_RUN):
        version = trust.head.version + 1 if trust.head else 0
        path = chain_path(version)
        try:
            raw = container.get(path, limit=chain.MAX_DOCUMENT_BYTES)
        except TooLarge as error:
            report.refused.append(Refusal(path, chain.Rule.SHAPE.value, str(error)))
            return
        if raw is None:
            return
        if not trust.accept_published(raw):
            # nothing after a version that does not verify can verify: stop at the head we have
            report.refused.append(Refusal(path, trust.errors[-1].rule.value, trust.refused[-1]))
            return
        state.store_version(version, raw)
        report.adopted += 1


def _published(container: Container, path: str, limit: int, too_large: Rule, missing: str) -> bytes:
    """``path`` from the member's container; a ``NodeInfoError`` (``too_large`` or MISSING) otherwise."""
    try:
        data = container.get(path, limit=limit)
    except TooLarge as error:
        raise NodeInfoError(too_large, path, str(error)) from None
    if data is None:
        raise NodeInfoError(Rule.MISSING, path, missing)
    return data


def _member_files(
    member: chain.Member, container: Container, agent: AgentState, present: set[str]
) -> tuple[dict[str, bytes | None], node_infos.Accepted]:
    """The files a member's verified index lists (``None``: already on disk, named by its hash)."""
    where = node_infos.index_path(member.member_id)
    raw = _published(container, where, node_infos.MAX_INDEX_BYTES, Rule.SHAPE, "no index published (yet)")
    accepted = node_infos.verify_index(raw, member=member, last=agent.indexes.get(member.member_id))
    files: dict[str, bytes | None] = {}
    for entry in accepted.index.node_infos:
        name = node_infos.disk_name(member.member_id, entry.sha256)
        if name in present:
            files[name] = None  # content-addressed: the bytes on disk are the ones this hash names
            continue
        path = node_infos.node_info_path(member.member_id, entry.sha256)
        missing = "listed by the verified index, not published (yet)"
        data = _published(container, path, node_infos.MAX_NODE_INFO_BYTES, Rule.HASH, missing)
        files[name] = node_infos.verify_file(data, member_id=member.member_id, entry=entry)
    return files, accepted


def flag_day(
    config: AgentConfig, head: chain.Trusted, container: Container, agent: AgentState, now: datetime, report: Report
) -> tuple[node_infos.RestartDecision, bytes | None]:
    """Whether this run restarts the node, and the network parameters it installs if so."""
    own = head.document.member(config.member_id)
    found: node_infos.FlagDay | None = None
    raw = None
    if own is not None:
        try:
            raw = container.get(node_infos.FLAG_DAY, limit=node_infos.MAX_FLAG_DAY_BYTES)
        except TooLarge as error:
            report.refused.append(Refusal(node_infos.FLAG_DAY, Rule.SHAPE.value, str(error)))
    if raw is not None and own is not None:
        try:
            found = node_infos.verify_flag_day(raw, member=own)
        except NodeInfoError as error:
            report.refused.append(Refusal(error.where, error.rule.value, error.message))
    decision = node_infos.decide_restart(found, applied=agent.applied_flag_days, now=now)
    if not decision.restart or found is None:
        return decision, None
    path = node_infos.network_parameters_path(found.network_parameters_sha256)
    try:
        data = container.get(path, limit=node_infos.MAX_NETWORK_PARAMETERS_BYTES)
        if data is None:
            raise NodeInfoError(Rule.MISSING, path, "the network parameters the flag day names are not published")
        return decision, node_infos.verify_network_parameters(data, flag_day=found)
    except (NodeInfoError, TooLarge) as error:
        problem = error if isinstance(error, NodeInfoError) else NodeInfoError(Rule.HASH, path, str(error))
        report.refused.append(Refusal(problem.where, problem.rule.value, problem.message))
        return node_infos.not_ready(decision, problem), None


def run_once(
    config: AgentConfig, container: Container, *, now: Callable[[], datetime], log: Callable[[str], None] = print
) -> Report:
    """One run (see the module docstring); ``log`` gets a line per document refused (not per one awaited)."""
    state = StateDir(config.state_dir)
    directory = NodeInfosDir(config.node_infos_dir)
    report = Report()
    trust = trust_from_disk(config, state)
    follow(trust, container, state, report)
    head = trust.head
    if head is None:
        for refusal in report.rejected:
            log(str(refusal))
        return report
    report.version, report.hash = head.version, head.hash
    report.admitted = head.document.member_ids
    agent = state.load()
    present = directory.present()
    wanted: dict[str, bytes | None] = {}
    accepted: dict[str, node_infos.Accepted] = {}
    for member in head.document.members:
        try:
            files, accepted[member.member_id] = _member_files(member, container, agent, present)
        except NodeInfoError as error:
            report.refused.append(Refusal(error.where, error.rule.value, error.message))
            files = dict.fromkeys(node_infos.kept_for(member.member_id, present))
        wanted.update(files)
    decision, parameters = flag_day(config, head, container, agent, now(), report)
    report.restart = decision

    plan = node_infos.plan(wanted, present)
    for name in plan.write:
        data = wanted[name]
        if data is not None:  # only names already on disk carry None, and those are not in plan.write
            directory.write(name, data)
    directory.remove(plan.remove)
    report.written, report.removed, report.unchanged = plan.write, plan.remove, plan.unchanged

    for member_id, a in accepted.items():
        agent.indexes[member_id] = (a.index.seq, a.fingerprint)
    if decision.restart and decision.flag_day_id is not None and parameters is not None:
        state.request_restart(decision.flag_day_id, parameters)
        agent.applied_flag_days.append(decision.flag_day_id)
    state.save(agent)
    for refusal in report.rejected:
        log(str(refusal))
    return report
