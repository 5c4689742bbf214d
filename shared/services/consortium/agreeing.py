"""The agreement driver: from the proposals judged over this member's head to the next version adopted.

``presign`` signs, with this member's own keys, the document each of its own changes makes over the
head; ``agree`` runs one ``agreement.step`` with the records the others published and, once a value is
chosen, signs that document, once: ``signed/{version}.json`` is written create-only in this member's
own storage before the signature is published; ``assemble`` adopts the next version once the final
signatures published make a document that ``chain.verify_next`` accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from shared.decisions import agreement, chain
from shared.decisions import consortium as rules
from shared.errors import ConflictError, PermanentError
from shared.ports.clock import Clock
from shared.ports.keys import KeyStore
from shared.ports.state import StateStore
from shared.reasons import Reason
from shared.services.consortium.own import OwnState
from shared.services.consortium.paths import PRIVATE_RECORD_FIELDS, signed_path
from shared.services.consortium.proposals import Proposals
from shared.services.consortium.store import ChainStore
from shared.services.records import iso
from shared.verification.pools import check_on_cores


@dataclass
class AgreementDriver:
    me: str
    own: OwnState
    store: ChainStore
    proposals: Proposals
    state: StateStore
    keys: KeyStore
    clock: Clock
    timing: agreement.Timing
    jitter: Callable[[int], float]

    def presign(self, base: chain.Trusted) -> None:
        """Sign, with its own keys, the document each of this member's own changes makes over ``base``.

        A change a version already carries is never signed again: a member that left would otherwise sign
        its old admission over the base without it (found by the chaos suite)."""
        done = {t.document.change.proposal_id for t in self.store.verified()}
        for p in self.own.read().get("proposals", []):
            proposal = rules.Proposal.model_validate(p)
            if proposal.member_id != self.me or proposal.kind == chain.Kind.REMOVE or proposal.proposal_id in done:
                continue
            existing = rules.presignature(proposal, me=self.me, own=self.proposals.own_presigned(), published={})
            if existing.presigned is not None and existing.presigned.base == base.hash:
                continue
            try:
                needed = rules.presigners(proposal, base)
            except chain.ChainError:
                continue
            document = proposal.document(base)
            digest = chain.document_hash(document)
            signatures = [self.sign(kid, bytes.fromhex(digest)) for member_id, kid in needed if member_id == self.me]
            entry = rules.Presigned(proposal_id=proposal.proposal_id, base=base.hash, hash=digest,
                                    signatures=tuple(signatures)).model_dump(mode="json")  # fmt: skip

            def store(body: dict[str, Any], entry: dict[str, Any] = entry) -> dict[str, Any]:
                others = [x for x in body.get("presigned", []) if x["proposal_id"] != entry["proposal_id"]]
                return {**body, "presigned": [*others, entry]}

            self.own.update(store)

    def sign(self, kid: str, digest: bytes) -> chain.Signature:
        raw = self.keys.sign(kid, digest)
        return chain.Signature(member_id=self.me, kid=kid, sig=chain.b64u(raw))

    def record(self, base: chain.Trusted) -> agreement.Record:
        stored = self.own.read().get("record")
        if stored and stored.get("version") == base.version + 1 and stored.get("base") == base.hash:
            published = {k: v for k, v in stored.items() if k not in PRIVATE_RECORD_FIELDS}
            record = rules.record_of(self.me, rules.RecordModel.model_validate(published))
            return replace(
                record,
                moved_at=float(stored.get("moved_at", 0.0)),
                signed=stored.get("signed"),
                engaged=bool(stored.get("engaged", False)),
            )
        return agreement.Record(self.me, base.version + 1, base.hash, moved_at=self.clock.now().timestamp())

    def agree(
        self, base: chain.Trusted, heads: Mapping[str, rules.Head], judged: Mapping[str, Any]
    ) -> agreement.Reason:
        electorate = list(base.document.member_ids)
        if self.me not in electorate:
            return agreement.Reason.OUTSIDE
        others = {m: rules.record_of(m, h.record) for m, h in heads.items() if h.record is not None and m in electorate}
        known = self.proposals.known(heads)
        eligible = [
            agreement.Value(pid, e.hash, known[pid].proposed_at)
            for pid, e in judged.items()
            if e.standing == rules.Standing.ELIGIBLE
        ]
        mine = self.record(base)
        round_ = max([b[0] for r in [mine, *others.values()] for b in (r.promised, r.leading) if b], default=0)
        timing = agreement.Timing(self.timing.timeout, self.timing.jitter * self.jitter(round_))
        result = agreement.step(
            mine, others, electorate=electorate, version=base.version + 1, base=base.hash, eligible=eligible,
            now=self.clock.now().timestamp(), timing=timing,
        )  # fmt: skip
        record = result.record
        if record.signed and not mine.signed:
            self.sign_final(base, record.signed)
        stored = self.own.read().get("record") or {}
        if record != mine or (stored.get("version"), stored.get("base")) != (record.version, record.base):
            body = {
                **rules.record_json(record),
                "moved_at": record.moved_at,
                "signed": record.signed,
                "engaged": record.engaged,
            }
            self.own.update(lambda own: {**own, "record": body})
        return result.reason

    def sign_final(self, base: chain.Trusted, digest_hex: str) -> None:
        """Sign the chosen document: recorded in our own storage first, once per version, ever."""
        version = base.version + 1
        try:
            self.state.create(signed_path(version), {"version": version, "hash": digest_hex, "at": iso(self.clock)})
        except ConflictError:
            stored = self.state.read(signed_path(version))
            if stored is None or stored.body.get("hash") != digest_hex:
                raise PermanentError(
                    f"version {version}: this member already signed another document; refusing to sign {digest_hex}",
                    reason=Reason.DOUBLE_SIGN,
                ) from None
        entry = base.document.member(self.me)
        if entry is None:  # agreement.step signs only for a member of the electorate
            raise PermanentError(
                f"version {version}: {self.me} is not in version {base.version}", reason=Reason.NOT_A_MEMBER
            )
        signature = self.sign(entry.governance_key.kid, bytes.fromhex(digest_hex))
        final = rules.Final(version=version, hash=digest_hex, signature=signature).model_dump(mode="json")
        self.own.update(lambda own: {**own, "final": final})

    def assemble(
        self, base: chain.Trusted, heads: Mapping[str, rules.Head], judged: Mapping[str, rules.Eligibility]
    ) -> chain.Trusted | None:
        """Adopt the next version once the final signatures published make it verify."""
        version = base.version + 1
        finals: dict[str, list[chain.Signature]] = {}
        own_final = self.own.read().get("final")
        for final in [rules.Final.model_validate(own_final)] if own_final else []:
            if final.version == version:
                finals.setdefault(final.hash, []).append(final.signature)
        for head in heads.values():
            if head.final is not None and head.final.version == version:
                finals.setdefault(head.final.hash, []).append(head.final.signature)
        if not finals:
            return None
        proposals = self.proposals.known(heads)
        own, published = self.proposals.own_presigned(), {m: h.presigned for m, h in heads.items()}
        for digest_hex, signatures in finals.items():
            for proposal_id, eligibility in judged.items():
                if eligibility.hash != digest_hex or eligibility.document is None:
                    continue
                presigned = rules.presignature(
                    proposals[proposal_id], me=self.me, own=own, published=published, digest=digest_hex
                ).signatures
                raw = chain.with_signatures(
                    eligibility.document, [s.model_dump(mode="json") for s in [*signatures, *presigned]]
                )
                try:
                    trusted = chain.verify_next(base, raw, check=check_on_cores)
                except chain.SignatureError:
                    continue  # not enough final signatures yet
                self.store.adopt(trusted)
                return trusted
        return None
