"""The closed set of reason codes a refusal or a permanent failure carries, one name per code.

A code crosses layers (an adapter raises it, a service records it, the CLI prints it, metrics count
it), so it is named once here rather than spelled as a string literal in each of them. Depends on
nothing, so every layer (and the node agent's pure core) may import it.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """The stable reason codes of a refusal or a permanent failure: what operators see in
    ``consortium rejections`` and on a failed member, and what metrics count by. The values are the
    stored and printed strings; the chain's own ``chain.Rule`` values sit beside these."""

    # a message as read
    NOT_JSON = "not_json"
    SCHEMA = "schema"
    OVERSIZE = "oversize"  # more bytes than the limit of what is read (a message, a head, a document)
    WRONG_QUEUE = "wrong_queue"
    # who asks
    NOT_THIS_MEMBER = "not_this_member"
    DUPLICATE_REQUEST_ID = "duplicate_request_id"
    MEMBER_TAKEN = "member_taken"
    LEGAL_NAME = "legal_name"  # a request under another legal name than the verified chain lists
    UNKNOWN_MEMBER = "unknown_member"
    NOT_A_MEMBER = "not_a_member"
    NOT_ACTIVE = "not_active"
    # proposals and votes
    UNKNOWN_PROPOSAL = "unknown_proposal"
    CLOSED_PROPOSAL = "closed_proposal"
    DECIDED = "decided"
    DOUBLE_SIGN = "double_sign"
    FORK = "fork"
    HEAD = "head"  # another member's head that does not verify (when no rule is named)
    # setting a member up
    ENTRY = "entry"
    TEMPLATE = "template"
    PROVISIONING = "provisioning"
    PROVISIONING_TIMEOUT = "provisioning_timeout"
    # the platform
    PERMANENT = "permanent"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    FENCED = "fenced"
    AUTH = "auth"
    SETTINGS = "settings"
    STORAGE = "storage"
    CAPACITY = "capacity"
    SHAPE = "shape"
