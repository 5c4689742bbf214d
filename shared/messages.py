"""The contract's messages as pydantic schemas: unknown fields rejected, strict types, safe identifiers.

``parse`` turns raw queue text into a message or a ``Rejection`` that names the field and the rule,
so a handler can record why a message was refused without ever raising for bad input.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.naming import MEMBER_ID
from shared.reasons import Reason

MAX_MESSAGE_BYTES = 16 * 1024
#: The autoscale ceiling of a member whose request names no ``scale`` (never below its ``node_count``).
DEFAULT_MAX_NODES = 6
MEMBER_ID_PATTERN = MEMBER_ID.pattern
REQUEST_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

MemberId = Annotated[str, Field(pattern=MEMBER_ID_PATTERN)]
RequestId = Annotated[str, Field(pattern=REQUEST_ID_PATTERN)]

# ISO 3166-1 alpha-2 country codes.
COUNTRIES = frozenset(
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ "
    "CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR "
    "GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO "
    "JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR "
    "MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO "
    "RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV "
    "TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW".split()
)
X500_ATTRIBUTES = {"O": (2, 128), "L": (2, 64), "C": (2, 2), "OU": (1, 64), "ST": (1, 64), "CN": (1, 64)}
X500_FORBIDDEN = re.compile(r"[=,\"'\\$\x00-\x1f]")


def parse_x500(name: str) -> dict[str, str]:
    """A Corda X.500 name as attributes; ValueError naming the attribute and the rule."""
    attributes: dict[str, str] = {}
    for part in name.split(","):
        key, sep, value = part.strip().partition("=")
        key = key.strip().upper()
        if not sep:
            raise ValueError(f"'{part.strip()}' is not ATTRIBUTE=value")
        if key not in X500_ATTRIBUTES:
            raise ValueError(f"attribute {key} is not allowed (O, L, C, OU, ST, CN)")
        if key in attributes:
            raise ValueError(f"attribute {key} appears twice")
        if value != value.strip() or not value:
            raise ValueError(f"attribute {key} must not be empty or padded with spaces")
        if X500_FORBIDDEN.search(value):
            raise ValueError(f"attribute {key} contains a character Corda forbids")
        low, high = X500_ATTRIBUTES[key]
        if not low <= len(value) <= high:
            raise ValueError(f"attribute {key} must be {low} to {high} characters")
        attributes[key] = value
    for required in ("O", "L", "C"):
        if required not in attributes:
            raise ValueError(f"attribute {required} is required")
    if attributes["C"] not in COUNTRIES:
        raise ValueError(f"C={attributes['C']} is not an ISO 3166 alpha-2 country code")
    return attributes


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ScaleBounds(_Message):
    min_nodes: int = Field(ge=1, le=100)
    max_nodes: int = Field(ge=1, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> ScaleBounds:
        if self.min_nodes > self.max_nodes:
            raise ValueError("min_nodes must not exceed max_nodes")
        return self


class OnboardingRequest(_Message):
    request_id: RequestId
    member_id: MemberId
    legal_name: str = Field(max_length=300)
    region: str = Field(pattern=r"^[a-z][a-z0-9]{2,30}$")
    node_count: int = Field(ge=1, le=100)
    contact_email: str = Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
    scale: ScaleBounds | None = None

    @field_validator("legal_name")
    @classmethod
    def _x500(cls, value: str) -> str:
        parse_x500(value)
        return value

    @model_validator(mode="after")
    def _within_bounds(self) -> OnboardingRequest:
        if self.scale and not self.scale.min_nodes <= self.node_count <= self.scale.max_nodes:
            raise ValueError("node_count must lie within scale.min_nodes..scale.max_nodes")
        return self


class Decision(_Message):
    """This member's operator's decision on a proposal (``onboarding-approvals``)."""

    proposal_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    decision: Literal["approve", "reject"]


class OffboardingRequest(_Message):
    """This member leaves, or (with ``member_id``, another member's id) proposes to remove that one."""

    request_id: RequestId
    reason: str = Field(min_length=1, max_length=500)
    member_id: MemberId | None = None


class KeyRotationRequest(_Message):
    request_id: RequestId
    member_id: MemberId | None = None
    force: bool = False


Step = Literal["keys", "provision", "propose", "activate", "retire"]


class StepMessage(_Message):
    """An internal onboarding step, posted by the previous step."""

    request_id: RequestId
    member_id: MemberId
    step: Step
    polls: int = Field(default=0, ge=0, le=10_000)


@dataclass(frozen=True)
class Rejection:
    """Why a message was refused: a stable reason code, the field (if one), and a one-line message."""

    reason: str
    message: str
    field: str | None = None
    member_id: str | None = None
    request_id: str | None = None


M = TypeVar("M", bound=BaseModel)


def _safe_ids(document: dict[str, Any]) -> tuple[str | None, str | None]:
    member, request = document.get("member_id"), document.get("request_id")
    return (
        member if isinstance(member, str) and re.fullmatch(MEMBER_ID_PATTERN, member) else None,
        request if isinstance(request, str) and re.fullmatch(REQUEST_ID_PATTERN, request) else None,
    )


def readable_ids(raw: str | bytes) -> tuple[str | None, str | None]:
    """The member and request ids of a message, where they can be read and are well-formed."""
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None, None
    return _safe_ids(document) if isinstance(document, dict) else (None, None)


def parse(model: type[M], raw: str | bytes) -> M | Rejection:
    """The message, or a Rejection naming the field and the rule; never raises for bad input."""
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) > MAX_MESSAGE_BYTES:
        return Rejection(Reason.OVERSIZE, f"message is {len(data)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return Rejection(Reason.NOT_JSON, f"message is not UTF-8 JSON: {e}")
    if not isinstance(document, dict):
        return Rejection(Reason.SCHEMA, "message must be a JSON object")
    safe_member, safe_request = _safe_ids(document)
    try:
        return model.model_validate(document)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        rule = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            rule = "unknown field"
        return Rejection(Reason.SCHEMA, f"{field}: {rule}" if field else rule, field, safe_member, safe_request)
