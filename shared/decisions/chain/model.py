"""The membership document as a typed model, its rules, and the error that names each rule broken.

One strict model of the signed document (``Document`` and its parts): unknown fields, wrong types and
bad patterns are refused with the field named. ``Rule`` lists the rules a version is checked against,
in the order ``verify`` checks them; each has its ``ChainError`` subclass, whose message starts with the
rule as the contract words it.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from shared.decisions import corda_pki, es256
from shared.decisions.signed import DocumentError, Strict, parse_instant
from shared.messages import parse_x500
from shared.naming import MEMBER_ID

#: A published version is at most this large (50 members take about 25 KiB).
MAX_DOCUMENT_BYTES = 1024 * 1024
CONSORTIUM_PATTERN = r"^[a-z][a-z0-9-]{1,62}[a-z0-9]$"
PROPOSAL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
#: A Key Vault key identifier with its version: ``https://<vault>/keys/<name>/<32 hex>``; locally the
#: emulator's vault URL may carry a path before ``/keys``.
KID_PATTERN = r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._-]+)*/keys/[A-Za-z0-9-]{1,127}/[0-9a-fA-F]{32}$"
ENDPOINT_PATTERN = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%-]+)*/?$"
B64U_PATTERN = r"^[A-Za-z0-9_-]+$"
TIMESTAMP_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"
#: base64 with padding (RFC 4648 §4), as ``corda_root`` carries a certificate's DER.
B64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


class Kind(StrEnum):
    GENESIS = "genesis"  # version 0: the founders, signed by every one of them
    ADMIT = "admit"  # a newcomer joins, and signs with the key this version lists for it
    REMOVE = "remove"  # a member is expelled; its own signature does not count
    LEAVE = "leave"  # a member goes, and signs that it goes
    ROTATE = "rotate"  # a member changes its own entry (a key, its endpoint), signing with old and new key
    PARAMETERS = "parameters"  # the network parameters change (members unchanged); the proposer is member_id


class Rule(StrEnum):
    SHAPE = "shape"  # not a membership document: a field missing, unknown, of the wrong type or pattern
    NOT_CANONICAL = "not_canonical"  # published bytes that are not the RFC 8785 form of what they hold
    GENESIS_HASH = "genesis_hash"  # version 0 is not the genesis this deployment was given
    CONSORTIUM = "consortium"  # another consortium's name or quorum rule
    VERSION = "version"  # not the version after the one trusted
    PREVIOUS = "previous"  # ``previous`` is not the hash of the version before
    CHANGE = "change"  # members differ from the version before by more than the change
    SIGNATURES = "signatures"  # not signed as the contract requires


class ChainError(DocumentError):
    """A document that does not verify; ``str()`` starts with the rule as the contract words it."""

    rule: Rule = Rule.SHAPE

    def __init__(self, message: str, *, version: int | None = None, detail: str = ""):
        self.message = message
        self.version = version
        self.detail = detail
        super().__init__(f"{message}: {detail}" if detail else message)


class ShapeError(ChainError):
    rule = Rule.SHAPE


class NotCanonicalError(ChainError):
    rule = Rule.NOT_CANONICAL


class GenesisHashError(ChainError):
    rule = Rule.GENESIS_HASH


class ConsortiumError(ChainError):
    rule = Rule.CONSORTIUM


class VersionError(ChainError):
    rule = Rule.VERSION


class PreviousError(ChainError):
    rule = Rule.PREVIOUS


class ChangeError(ChainError):
    rule = Rule.CHANGE


class SignatureError(ChainError):
    rule = Rule.SIGNATURES


# --- the model ---------------------------------------------------------------------------------


class PublicJwk(Strict):
    kty: Literal["EC"]
    crv: Literal["P-256"]
    x: str = Field(pattern=B64U_PATTERN, min_length=43, max_length=43)
    y: str = Field(pattern=B64U_PATTERN, min_length=43, max_length=43)

    @model_validator(mode="after")
    def _on_the_curve(self) -> PublicJwk:
        try:
            es256.public_key(self.x, self.y)
        except ValueError as error:
            raise ValueError("x and y are not a point on P-256") from error
        return self


class KeyRef(Strict):
    kid: str = Field(pattern=KID_PATTERN, max_length=512)
    jwk: PublicJwk


class Member(Strict):
    member_id: str = Field(pattern=MEMBER_ID.pattern)
    legal_name: str = Field(max_length=300)
    governance_key: KeyRef
    endpoint: str = Field(pattern=ENDPOINT_PATTERN, max_length=2048)
    #: The member's Corda node identity and TLS keys, when it publishes them in the chain.
    identity_key: KeyRef | None = None
    tls_key: KeyRef | None = None
    #: Contract v3: the member's own Corda root CA certificate (padded base64 of its DER), a CA of the
    #: member's own organisation only (``corda_pki.check_root``); nodes trust the roots of the head.
    corda_root: str | None = Field(default=None, pattern=B64_PATTERN, min_length=4, max_length=8192)

    @field_validator("legal_name")
    @classmethod
    def _x500(cls, value: str) -> str:
        x500_name(value)
        return value

    @model_validator(mode="after")
    def _own_root(self) -> Member:
        if self.corda_root is not None:
            check = _root_check(self.corda_root, self.member_id, self.legal_name)
            if not check.accepted:
                raise ValueError(check.message)
        return self


class Change(Strict):
    kind: Annotated[Kind, Field(strict=False)]  # the wire value, a string
    member_id: str = Field(pattern=MEMBER_ID.pattern)
    proposal_id: str = Field(pattern=PROPOSAL_ID_PATTERN)


class Network(Strict):
    """Contract v3: the network parameters every node runs, agreed by hash (the raw serialized Corda
    ``NetworkParameters``, unsigned); only a ``parameters`` version changes it, stepping the epoch."""

    epoch: int = Field(ge=1, le=2**31 - 1)
    parameters_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    #: When nodes move to these parameters: a node runs the newest verified network whose time has come.
    switch_at: str = Field(pattern=TIMESTAMP_PATTERN)

    @field_validator("switch_at")
    @classmethod
    def _a_real_time(cls, value: str) -> str:
        parse_instant(value)
        return value


class Signature(Strict):
    member_id: str = Field(pattern=MEMBER_ID.pattern)
    kid: str = Field(pattern=KID_PATTERN, max_length=512)
    sig: str = Field(pattern=B64U_PATTERN, min_length=86, max_length=86)


class Document(Strict):
    consortium: str = Field(pattern=CONSORTIUM_PATTERN)
    version: int = Field(ge=0, le=2**53 - 1)
    previous: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None
    issued_at: str = Field(pattern=TIMESTAMP_PATTERN)
    quorum: Literal["majority"]
    change: Change
    members: tuple[Member, ...] = Field(min_length=1, max_length=500, strict=False)  # a JSON array
    #: Contract v3: the agreed network parameters; absent in a chain that has none yet.
    network: Network | None = None
    signatures: tuple[Signature, ...] = Field(max_length=1000, strict=False)

    @field_validator("issued_at")
    @classmethod
    def _a_real_time(cls, value: str) -> str:
        parse_instant(value)
        return value

    @model_validator(mode="after")
    def _members_ordered_and_distinct(self) -> Document:
        ids = [m.member_id for m in self.members]
        if ids != sorted(set(ids)):
            raise ValueError("members must be in member_id order, each member once")
        names = [x500_name(m.legal_name) for m in self.members]
        if len(set(names)) != len(names):
            raise ValueError("two members share a legal_name")
        kids = [m.governance_key.kid for m in self.members]
        points = [(m.governance_key.jwk.x, m.governance_key.jwk.y) for m in self.members]
        if len(set(kids)) != len(kids) or len(set(points)) != len(points):
            raise ValueError("two members share a governance key")
        if (self.version == 0) != (self.previous is None) or (self.version == 0) != (self.change.kind == Kind.GENESIS):
            raise ValueError("version 0, previous null and change genesis go together")
        return self

    def member(self, member_id: str) -> Member | None:
        return next((m for m in self.members if m.member_id == member_id), None)

    @property
    def member_ids(self) -> tuple[str, ...]:
        return tuple(m.member_id for m in self.members)

    @property
    def label(self) -> str:
        """``version 3 (admit bank-d)``: how errors and logs name a version."""
        return f"version {self.version} ({self.change.kind} {self.change.member_id})"


@lru_cache(maxsize=4096)
def _root_check(corda_root: str, member_id: str, legal_name: str) -> corda_pki.RootCheck:
    """A member's root judged once per process (entries repeat version after version)."""
    return corda_pki.check_root(corda_root, member_id, legal_name)


@lru_cache(maxsize=8192)
def x500_name(name: str) -> tuple[tuple[str, str], ...]:
    """A legal name's attributes, sorted (names repeat version after version: parsed once each)."""
    return tuple(sorted(parse_x500(name).items()))
