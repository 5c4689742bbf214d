"""Bad input through every door of a member's deployment: its queues (each message refused once with its
reason, recorded in its own storage, nothing poisoned), its HTTP port (always an answer, the host keeps
serving) and the ``consortium`` command line (exit 2 and a one-line reason); nothing may change.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import socket
import string
import subprocess
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.decisions import chain
from shared.messages import (
    Decision,
    KeyRotationRequest,
    OffboardingRequest,
    OnboardingRequest,
    Rejection,
    StepMessage,
    parse,
)
from shared.naming import KEY_KINDS, key_name, scale_set_name
from shared.services import onboarding as ob
from shared.services import rotation
from shared.services.consortium import SELF
from shared.services.records import rejection_path
from tools.chaos.deployments import (
    _EMPTY,
    FOUNDERS,
    MEMBERS,
    QUEUE_MODELS,
    STEADY_TPM,
    UNDER_CHAOS,
    MemberStack,
    own_chain,
    own_record,
    request_body,
)
from tools.harness.wait import wait_until

NOBODY = "nobody-here"


def good_message(queue: str) -> dict[str, Any]:
    """A well-formed message for ``queue`` that every member's deployment refuses for what it says (the
    base of the mutations): about a member that is not this one and not in the chain, or a proposal
    nobody made."""
    rid = f"req-{NOBODY}"
    if queue == ob.REQUESTS:
        return {"request_id": rid, "member_id": NOBODY, "legal_name": "O=Nobody, L=Paris, C=FR",
                "region": "westeurope", "node_count": 2, "contact_email": "ops@nobody.example",
                "scale": {"min_nodes": 1, "max_nodes": 4}}  # fmt: skip
    if queue == ob.APPROVALS:
        return {"proposal_id": f"prop-admit-{NOBODY}", "decision": "approve"}
    if queue == ob.OFFBOARDING:
        return {"request_id": rid, "member_id": NOBODY, "reason": "leaving"}
    if queue == rotation.REQUESTS:
        return {"request_id": rid, "member_id": NOBODY, "force": True}
    step = next(s for s, q in ob.STEP_QUEUES.items() if q == queue)
    return {"request_id": rid, "member_id": NOBODY, "step": step}


def _handwritten() -> list[tuple[str, str]]:
    cases: list[tuple[str, str]] = []
    for queue in QUEUE_MODELS:
        good = good_message(queue)
        cases += [
            (queue, ""), (queue, "not json"), (queue, "{"), (queue, "[]"), (queue, "null"), (queue, "42"),
            (queue, json.dumps(good)),
            (queue, json.dumps({**good, "member_id": "../../etc/passwd"})),
            (queue, json.dumps({**good, "request_id": "a b"})),
            (queue, json.dumps({**good, "admin": True})),
            (queue, json.dumps({k: v for k, v in good.items() if k != sorted(good)[0]})),
            (queue, json.dumps({**good, "member_id": "x" * 20_000})),
        ]  # fmt: skip
    good = good_message(ob.REQUESTS)
    cases += [
        (ob.REQUESTS, json.dumps({**good, "legal_name": "O=Bank, L=Paris, C=XX"})),
        (ob.REQUESTS, json.dumps({**good, "legal_name": "O=Bank, L=Paris, C=FR, CN=<script>"})),
        (ob.REQUESTS, json.dumps({**good, "node_count": True})),
        (ob.REQUESTS, json.dumps({**good, "node_count": 0})),
        (ob.REQUESTS, json.dumps({**good, "scale": {"min_nodes": 5, "max_nodes": 2}})),
        (ob.REQUESTS, json.dumps({**good, "contact_email": "x@y"})),
        (ob.REQUESTS, json.dumps({**good, "region": "West Europe"})),
        (ob.REQUESTS, json.dumps({**good, "member_id": "bank-a"})),  # another member's id: not this member
        (ob.REQUESTS, json.dumps({**good, "member_id": "bank-d"})),
        (ob.APPROVALS, json.dumps({**good_message(ob.APPROVALS), "decision": "maybe"})),
        (ob.APPROVALS, json.dumps({**good_message(ob.APPROVALS), "proposal_id": "../x"})),
        (ob.APPROVALS, json.dumps({**good_message(ob.APPROVALS), "signature": "A" * 10})),  # version 1's vote
        (
            ob.APPROVALS,
            json.dumps(
                {
                    "request_id": "req-1",
                    "member_id": "bank-c",
                    "approver_id": "bank-a",
                    "decision": "approve",
                    "signature": "A" * 86,
                }
            ),
        ),
        (ob.OFFBOARDING, json.dumps({**good_message(ob.OFFBOARDING), "reason": ""})),
        (ob.OFFBOARDING, json.dumps({**good_message(ob.OFFBOARDING), "reason": "r" * 501})),
        (rotation.REQUESTS, json.dumps({**good_message(rotation.REQUESTS), "force": "yes"})),
        (rotation.REQUESTS, json.dumps({"request_id": "rot-x", "force": True})),  # a member not active: not_active
        (rotation.REQUESTS, json.dumps({**good_message(rotation.REQUESTS), "member_id": "bank-b"})),
        (ob.STEP_QUEUES["provision"], json.dumps({**good_message(ob.STEP_QUEUES["provision"]), "step": "keys"})),
        (ob.STEP_QUEUES["keys"], json.dumps({**good_message(ob.STEP_QUEUES["keys"]), "polls": -1})),
        (ob.STEP_QUEUES["propose"], json.dumps({**good_message(ob.STEP_QUEUES["propose"]), "step": "publish"})),
        (ob.STEP_QUEUES["activate"], json.dumps({**good_message(ob.STEP_QUEUES["activate"]), "member_id": "bank-a"})),
    ]
    return cases


def expected_reason(queue: str, raw: str, member: str) -> str | None:
    """The reason ``member``'s deployment must record for ``raw`` on its ``queue`` while only the founders
    are in the chain and no member has asked to join; None when the message is acceptable there."""
    parsed = parse(QUEUE_MODELS[queue], raw)
    if isinstance(parsed, Rejection):
        return parsed.reason
    founder = member in FOUNDERS
    if isinstance(parsed, StepMessage):
        wrong = ob.STEP_QUEUES[parsed.step] != queue or parsed.member_id != member
        return "wrong_queue" if wrong else None
    if isinstance(parsed, OnboardingRequest):
        return "not_this_member" if parsed.member_id != member else None
    if isinstance(parsed, Decision):
        return "unknown_proposal"
    if isinstance(parsed, OffboardingRequest):
        target = parsed.member_id or member
        return None if target in FOUNDERS else "not_a_member"
    if isinstance(parsed, KeyRotationRequest):
        if parsed.member_id not in (None, member):
            return "not_this_member"
        return None if founder else "not_active"
    return None


def queue_can_carry(raw: str) -> bool:
    """Storage queues carry XML 1.0 text (no control characters; ``\\r`` is normalised by the XML parser)."""
    carried = all((ch in "\t\n" or ord(ch) >= 0x20) and not 0xFFFE <= ord(ch) <= 0xFFFF for ch in raw)
    return carried and len(raw) < 48_000


def generated_cases(count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` bad messages drawn with hypothesis: one field of a good message mutated, dropped or
    retyped, unknown fields, truncated or whole-replaced JSON, noise; only those the app must refuse."""
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import seed as hypothesis_seed
    from hypothesis import settings as hypothesis_settings
    from hypothesis import strategies as st

    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
        max_leaves=8,
    )
    found: list[tuple[str, str]] = []

    @hypothesis_seed(seed)
    @hypothesis_settings(
        max_examples=count * 4, database=None, deadline=None, phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(
        queue=st.sampled_from(sorted(QUEUE_MODELS)),
        shape=st.sampled_from(["field", "drop", "extra", "truncate", "replace", "noise"]),
        pick=st.integers(min_value=0, max_value=10),
        value=values,
        noise=st.text(alphabet=string.ascii_letters + string.digits + string.punctuation + " \t\n", max_size=80),
    )
    def collect(queue: str, shape: str, pick: int, value: Any, noise: str) -> None:
        good = good_message(queue)
        name = sorted(good)[pick % len(good)]
        if shape == "field":
            raw = json.dumps({**good, name: value})
        elif shape == "drop":
            raw = json.dumps({k: v for k, v in good.items() if k != name})
        elif shape == "extra":
            raw = json.dumps({**good, (noise[:12] or "x") + "_": value})
        elif shape == "truncate":
            text = json.dumps(good)
            raw = text[: max(1, len(text) * pick // 11)]
        elif shape == "replace":
            raw = json.dumps(value)
        else:
            raw = noise
        found.append((queue, raw))

    collect()
    seen: set[tuple[str, str]] = set()
    cases = []
    for queue, raw in found:
        if (queue, raw) in seen or not queue_can_carry(raw) or not any(expected_reason(queue, raw, m) for m in MEMBERS):
            continue
        seen.add((queue, raw))
        cases.append((queue, raw))
    return cases[:count]


def queue_corpus(generated: int = 160, seed: int = 20240) -> list[tuple[str, str, str, str]]:
    """(member, queue, message, expected reason): the hand-written cases and ``generated`` drawn by
    hypothesis, each sent to one member's own queue (in turn, so every member gets its share)."""
    cases = []
    for n, (queue, raw) in enumerate([*_handwritten(), *generated_cases(generated, seed)]):
        for shift in range(len(MEMBERS)):  # the first member in turn for which the message is bad
            member = MEMBERS[(n + shift) % len(MEMBERS)]
            reason = expected_reason(queue, raw, member)
            if reason is not None and queue_can_carry(raw):
                cases.append((member, queue, raw, reason))
                break
    unique = {(m, q, r): reason for m, q, r, reason in cases}
    return [(m, q, r, reason) for (m, q, r), reason in unique.items()]


@dataclass
class BadInputResult:
    tried: int = 0
    lost: list[str] = field(default_factory=list)
    wrong_reason: list[str] = field(default_factory=list)
    poisoned: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


def poison_counts(stack: MemberStack) -> dict[tuple[str, str], int]:
    return {(m, q): stack.platform(m).queues.count(f"{q}-poison") for m in MEMBERS for q in QUEUE_MODELS}


def snapshot(stack: MemberStack) -> dict[str, Any]:
    """What bad input must not change: each member's chain, proposals and approvals, its record's
    request, the key versions in its vault and its scale set's capacity."""
    found: dict[str, Any] = {}
    for member in MEMBERS:
        p = stack.platform(member)
        own = (p.state.read(SELF) or _EMPTY).body
        record = own_record(p, member) or {}
        scale_set = p.scalesets.get(scale_set_name(member))
        found[member] = {
            "chain": [chain.document_hash(d) for d in own_chain(p)],
            "proposals": sorted(x.get("proposal_id") for x in own.get("proposals") or []),
            "approvals": own.get("approvals") or {},
            "request": record.get("request_id"),
            "keys": {k: [v.version for v in p.keys.list_versions(key_name(member, k))] for k in KEY_KINDS},
            "capacity": scale_set.capacity if scale_set else None,
        }
    return found


def changed_between(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    return [f"{member}: {what} changed from {before[member][what]!r} to {after[member][what]!r}"
            for member in before for what in before[member] if before[member][what] != after[member][what]]  # fmt: skip


def _is_active(stack: MemberStack, member: str) -> bool:
    return (own_record(stack.platform(member), member) or {}).get("status") == "active"


def start_founders(stack: MemberStack, tag: str = "good") -> None:
    """The founders' own join requests (good input), and wait until both are active. Each founder's scale set
    is offered the load of its two nodes, so its autoscale keeps it where it is while bad input flows."""
    for founder in FOUNDERS:
        stack.admin("PUT", f"/_admin/load/{scale_set_name(founder)}", {"tpm": STEADY_TPM})
        stack.platform(founder).queues.send(ob.REQUESTS, request_body(founder, f"req-{founder}-{tag}"))
    for founder in FOUNDERS:
        wait_until(f"{founder} active", functools.partial(_is_active, stack, founder), 120, ignoring=UNDER_CHAOS)


def run_queue_corpus(stack: MemberStack, cases: list[tuple[str, str, str, str]]) -> BadInputResult:
    """Post every case to its member's own queue on a stack whose founders are active; each must end as
    one recorded rejection with its reason in that member's storage, and nothing may change."""
    before_poison, before = poison_counts(stack), snapshot(stack)
    result = BadInputResult(tried=len(cases))
    for member, queue, raw, _ in cases:
        stack.platform(member).queues.send(queue, raw)
    paths = {(m, rejection_path(q, r)): (m, q, r, reason) for m, q, r, reason in cases}

    def recorded() -> set[tuple[str, str]]:
        found = set()
        for member in MEMBERS:
            found |= {(member, path) for path in stack.platform(member).state.list_paths("rejections/")}
        return found & set(paths)

    with contextlib.suppress(TimeoutError):
        wait_until(
            "every bad message recorded", lambda: len(recorded()) == len(paths), 180, every=1.0, ignoring=UNDER_CHAOS
        )
    done = recorded()
    for (member, path), (_, queue, raw, reason) in paths.items():
        if (member, path) not in done:
            result.lost.append(f"{member} {queue}: {raw[:80]!r} left no rejection")
            continue
        doc = stack.platform(member).state.read(path)
        body = doc.body if doc else {}
        if body.get("reason") != reason or not body.get("message") or body.get("queue") != queue:
            result.wrong_reason.append(f"{member} {queue}: {raw[:60]!r} recorded as {body.get('reason')!r}, "
                                       f"expected {reason!r}")  # fmt: skip
    with contextlib.suppress(TimeoutError):  # the second deliveries land before the checks, not after them
        wait_until("queues drained", lambda: not any(stack.platform(m).queues.count(q) for m in MEMBERS
                                                     for q in QUEUE_MODELS), 60, ignoring=UNDER_CHAOS)  # fmt: skip
    after_poison = poison_counts(stack)
    result.poisoned = [f"{m} {q}-poison grew by {after_poison[(m, q)] - n}" for (m, q), n in before_poison.items()
                       if after_poison[(m, q)] > n]  # fmt: skip
    result.changed = changed_between(before, snapshot(stack))
    return result


#: (what, raw request, statuses that are right); None: the connection may close without an answer.
HTTP_CASES: list[tuple[str, bytes, set[int | None]]] = [
    ("POST on a GET route", b"POST /api/healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", {405}),
    ("DELETE /api/status", b"DELETE /api/status HTTP/1.1\r\nHost: x\r\n\r\n", {404, 405}),
    ("PUT /api/dashboard", b"PUT /api/dashboard HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", {404, 405}),
    ("PATCH /api/status", b"PATCH /api/status HTTP/1.1\r\nHost: x\r\n\r\n", {404, 405}),
    ("OPTIONS /api/healthz", b"OPTIONS /api/healthz HTTP/1.1\r\nHost: x\r\n\r\n", {405}),
    ("TRACE", b"TRACE /api/healthz HTTP/1.1\r\nHost: x\r\n\r\n", {501}),
    ("unknown method", b"FROBNICATE /api/healthz HTTP/1.1\r\nHost: x\r\n\r\n", {501}),
    ("lower-case method", b"get /api/healthz HTTP/1.1\r\nHost: x\r\n\r\n", {501}),
    ("TLS hello on the plain port", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(32) + b"\r\n\r\n",
     {400, None}),
    ("bad HTTP version", b"GET /api/healthz HTTP/9.9\r\nHost: x\r\n\r\n", {505}),
    ("garbage request line", b"\x00\x01\x02 / /\r\n\r\n", {400}),
    ("path traversal", b"GET /api/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", {404}),
    ("encoded traversal", b"GET /api/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", {404}),
    ("NUL in the path", b"GET /api/healthz%00 HTTP/1.1\r\nHost: x\r\n\r\n", {404}),
    ("unknown route", b"GET /api/members/../../../etc HTTP/1.1\r\nHost: x\r\n\r\n", {404}),
    ("non-ASCII path", "GET /api/h\u00e9althz HTTP/1.1\r\nHost: x\r\n\r\n".encode(), {404}),
    ("relative path", b"GET api/healthz HTTP/1.1\r\nHost: x\r\n\r\n", {404}),
    ("70 KB path", b"GET /api/" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", {414}),
    ("bad query escapes", b"GET /api/status?x=%ZZ&&=&code=%22%3E%3Cscript%3E HTTP/1.1\r\nHost: x\r\n\r\n",
     {200, 404, 503}),
    ("30 KB query", b"GET /api/healthz?q=" + b"%41" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", {200}),
    ("repeated query keys", b"GET /api/dashboard?code=a&code=b&code=" + b"c" * 500 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
     {200, 404, 503}),
    ("70 KB header", b"GET /api/healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n", {431}),
    ("200 headers", b"GET /api/healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(200))
     + b"\r\n", {431}),
    ("header without a colon", b"GET /api/healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", {200, 400}),
    ("non-numeric Content-Length", b"POST /api/healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", {400}),
    ("negative Content-Length", b"POST /api/healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", {400}),
    ("1 TB Content-Length", b"POST /api/healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n", {413}),
    ("Content-Length beyond the body", b"GET /api/healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nshort",
     {200}),
    ("chunked garbage", b"POST /api/status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     {404, 405}),
    ("headers never finished", b"GET /api/healthz HTTP/1.1\r\nHost: x\r\nX-A: 1", {None, 200, 400}),
    ("nothing at all", b"", {None}),
]  # fmt: skip


def http_exchange(port: int, raw: bytes, timeout: float = 10.0) -> int | None:
    """Send ``raw``, close the sending side, and return the status of the answer (None if there is none)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        with contextlib.suppress(OSError):  # the server may answer and close before reading it all
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
        data = b""
        with contextlib.suppress(OSError):
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(match.group(1)) if match else None


def healthz(port: int) -> bool:
    with contextlib.suppress(OSError):
        return http_exchange(port, b"GET /api/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") == 200
    return False


def run_http_cases(stack: MemberStack, *, every_deployment: bool = True) -> BadInputResult:
    """Every case against every deployment's HTTP port (or one deployment of each member); each must be
    answered as listed, the host must keep serving."""
    result = BadInputResult()
    firsts = {inst.member: n for n, inst in reversed(list(enumerate(stack.instances)))}
    for n, inst in enumerate(stack.instances):
        if not every_deployment and firsts[inst.member] != n:
            continue
        for what, raw, allowed in HTTP_CASES:
            result.tried += 1
            try:
                status = http_exchange(inst.port, raw)
            except OSError as e:
                status = None
                if None not in allowed:
                    result.lost.append(f"{inst.name} {what}: {e}")
                    continue
            if status not in allowed:
                result.wrong_reason.append(f"{inst.name} {what}: answered {status}, expected one of {allowed}")
            if not healthz(inst.port) or not stack.running(n):
                result.lost.append(f"{inst.name} stopped serving after {what!r}")
    return result


#: (argv after ``--member bank-c``, or a whole argv when it starts with ``--member``; words the one-line
#: reason must contain): each must exit 2.
CLI_CASES: list[tuple[list[str], list[str]]] = [
    (["--member", "Bank_C", "status"], ["--member", "must match"]),
    (["--member", "bank-z", "status"], ["bank-z"]),
    (["join", "--legal-name", "Bank C"], ["legal_name"]),
    (["join", "--legal-name", "O=Bank C, L=Amsterdam, C=XX"], ["legal_name"]),
    (["join", "--legal-name", "O=Bank C, L=Amsterdam, C=NL", "--node-count", "0"], ["node_count"]),
    (["join", "--legal-name", "O=Bank C, L=Amsterdam, C=NL", "--node-count", "two"], ["--node-count", "int"]),
    (["join", "--legal-name", "O=Bank C, L=Amsterdam, C=NL", "--contact-email", "nobody"], ["contact_email"]),
    (["join", "--legal-name", "O=Bank C, L=Amsterdam, C=NL", "--region", "West Europe"], ["region"]),
    (["join", "--legal-name", "O=Bank C, L=Amsterdam, C=NL", "--min-nodes", "4", "--max-nodes", "2"],
     ["min_nodes"]),
    (["join", "--legal-name", "O=Bank C, L=Amsterdam, C=NL", "--request-id", "../x"], ["request_id"]),
    (["join"], ["--legal-name"]),
    (["approve", "../x"], ["proposal_id"]),
    (["approve", "prop-never-made"], ["prop-never-made"]),
    (["reject"], ["PROPOSAL_ID"]),
    (["leave", "--reason", ""], ["reason"]),
    (["leave", "--request-id", "bad id!"], ["request_id"]),
    (["remove"], ["MEMBER"]),
    (["remove", "../etc"], ["member"]),
    (["rotate-keys", "--wait", "-1"], ["--wait"]),
    (["rotate-keys", "--request-id", "bad id!", "--wait", "0"], ["request_id"]),
    (["load", "--tpm", "-5"], ["--tpm"]),
    (["load"], ["--tpm"]),
    (["fault", "service", "compute", "--status", "404"], ["--status"]),
    (["fault", "service", "storage"], ["invalid choice"]),
    (["fault", "node", "0", "--kind", "melted"], ["--kind"]),
    (["rejections", "--limit", "0"], ["--limit"]),
    (["replay-poison", "--queue", "nope"], ["--queue"]),
    (["frobnicate"], ["invalid choice"]),
    (["status", "--jsn"], ["unrecognized arguments"]),
    (["status", "--json", "--watch", "1"], ["--watch"]),
]  # fmt: skip


def run_cli_cases(
    stack: MemberStack, cases: list[tuple[list[str], list[str]]], member: str = "bank-c"
) -> BadInputResult:
    """Each command, as ``member``'s operator in the stack's folder, must exit 2 with its reason on the last
    line of stderr, naming the field or the rule; none may change anything."""
    consortium = Path(sys.executable).parent / "consortium"
    env = {k: v for k, v in os.environ.items() if k not in ("CONSORTIUM_MEMBER", "CONSORTIUM_MEMBER_ID")}

    def one(case: tuple[list[str], list[str]]) -> str | None:
        argv, words = case
        full = argv if argv[0] == "--member" else ["--member", member, *argv]
        done = subprocess.run(  # our own entry point with fixed arguments  # nosec B603
            [str(consortium), *full], cwd=stack.work, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        if done.returncode != 2:
            return f"consortium {' '.join(full)}: exit {done.returncode}, expected 2 ({last!r})"
        missing = [w for w in words if w.lower() not in last.lower()]
        if missing or "Traceback" in done.stderr:
            return f"consortium {' '.join(full)}: reason {last!r} does not name {missing}"
        return None

    before = snapshot(stack)
    result = BadInputResult(tried=len(cases))
    with ThreadPoolExecutor(max_workers=2) as pool:
        for problem in pool.map(one, cases):
            if problem:
                result.wrong_reason.append(problem)
    with contextlib.suppress(TimeoutError):
        wait_until("queues drained", lambda: not any(stack.platform(m).queues.count(q) for m in MEMBERS
                                                     for q in QUEUE_MODELS), 30, ignoring=UNDER_CHAOS)  # fmt: skip
    result.changed = changed_between(before, snapshot(stack))
    return result
