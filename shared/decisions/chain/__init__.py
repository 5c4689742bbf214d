"""The membership chain: the signed document, its canonical form, and the one check of a version.

Members agree on who is in the consortium through numbered versions of one document, each signed by
the members of the version before it (docs/contract.md, "The membership chain"). This package is the
only place that decides whether a version is valid. It reads like python-tuf's ``metadata.py``:

- one typed model of the signed document (``Document``), strict: unknown fields, wrong types and
  bad patterns are refused with the field named;
- ``signature_result`` counts who signed, with which key, against the version before, and never
  raises; ``verify_next`` (and ``verify_genesis`` for version 0) raise a ``ChainError`` subclass
  whose message names the rule broken, and otherwise return a ``Trusted`` version;
- nothing read from another member or from storage becomes ``Trusted`` without passing them.

Canonical form: RFC 8785 (JSON Canonicalization Scheme) through the ``rfc8785`` library, of the
document without ``signatures``; a version's hash is the lowercase hex SHA-256 of that form.
Signatures: ES256 over the canonical form (Key Vault signs its SHA-256), raw 64-byte r||s,
base64url without padding.

The rules, in the order they are checked (the first broken one is reported):
1. shape: the document parses (``ShapeError``);
2. genesis: version 0 is the one whose hash this deployment was given (``GenesisHashError``);
3. the consortium's name and quorum rule never change (``ConsortiumError``);
4. ``version`` is N+1 (``VersionError``) and ``previous`` is the hash of N (``PreviousError``);
5. ``members`` is N's with exactly ``change`` applied, and ``network`` (contract v3) is N's unless the
   change is ``parameters``, which steps its epoch by one (``ChangeError``); a member's ``corda_root``
   is a CA of its own organisation only (``corda_pki.check_root``, a ``ShapeError``);
6. signed by more than half of N's members with the keys N lists for them, plus the signers the
   change needs (the newcomer, the leaver, the rotating member with its old and new key); the member
   removed does not count; every signature listed verifies (``SignatureError``). A ``parameters``
   version needs the majority and nobody else.

The package, one job per module (``from shared.decisions import chain`` names all of it):

- ``model``: the constants, ``Kind``, ``Rule``, the ``ChainError`` per rule, and the typed document;
- ``canonical``: the RFC 8785 form, the hash, and published bytes read back (``read_published``);
- ``signatures``: who may sign a version (``electorate``) and whether it is enough (``signature_result``);
- ``verify``: the one check of a version (``verify_genesis``, ``verify_next``, ``verify_chain``);
- ``build``: the unsigned next version of a change, the unsigned genesis, signatures merged;
- ``node_trust``: what a Corda node's agent believes (``NodeTrust``).

Pure: no I/O, no pools, no caches but the bounded ``lru_cache`` of pure functions of strings. Reading
a long chain at once, with its signatures checked on every core, is ``shared.verification``'s job,
with the same checks.
"""

from __future__ import annotations

from shared.decisions import es256
from shared.decisions.chain.build import unsigned_genesis, unsigned_next, with_signatures
from shared.decisions.chain.canonical import (
    EntryBytes,
    canonical,
    canonical_key,
    document_hash,
    own_signing_bytes,
    parse_published,
    published_bytes,
    read_published,
    signing_bytes,
)
from shared.decisions.chain.model import (
    B64U_PATTERN,
    CONSORTIUM_PATTERN,
    ENDPOINT_PATTERN,
    KID_PATTERN,
    MAX_DOCUMENT_BYTES,
    PROPOSAL_ID_PATTERN,
    TIMESTAMP_PATTERN,
    ChainError,
    Change,
    ChangeError,
    ConsortiumError,
    Document,
    GenesisHashError,
    KeyRef,
    Kind,
    Member,
    Network,
    NotCanonicalError,
    PreviousError,
    PublicJwk,
    Rule,
    ShapeError,
    Signature,
    SignatureError,
    VersionError,
    _root_check,
    x500_name,
)
from shared.decisions.chain.node_trust import NodeTrust
from shared.decisions.chain.signatures import (
    Check,
    Listed,
    SignatureResult,
    Signer,
    _b64u_decode,
    b64u,
    check_each,
    count_signatures,
    electorate,
    own_signature_problem,
    signature_plan,
    signature_result,
    verify_signature,
)
from shared.decisions.chain.verify import (
    Trusted,
    check_network,
    equivocators,
    expected_members,
    genesis_candidate,
    next_candidate,
    parse,
    signed_enough,
    verify_chain,
    verify_genesis,
    verify_next,
)
from shared.decisions.signed import first_problem


def forget() -> None:
    """Empty this process's memos of pure functions (public keys, legal names, keys' bytes): what a new
    deployment or node starts with (``shared.verification.forget`` also stops its pools)."""
    es256.public_key.cache_clear()
    x500_name.cache_clear()
    _root_check.cache_clear()
    canonical_key.cache_clear()


__all__ = [
    "B64U_PATTERN",
    "CONSORTIUM_PATTERN",
    "ENDPOINT_PATTERN",
    "KID_PATTERN",
    "MAX_DOCUMENT_BYTES",
    "PROPOSAL_ID_PATTERN",
    "TIMESTAMP_PATTERN",
    "ChainError",
    "Change",
    "ChangeError",
    "Check",
    "ConsortiumError",
    "Document",
    "EntryBytes",
    "GenesisHashError",
    "KeyRef",
    "Kind",
    "Listed",
    "Member",
    "Network",
    "NodeTrust",
    "NotCanonicalError",
    "PreviousError",
    "PublicJwk",
    "Rule",
    "ShapeError",
    "Signature",
    "SignatureError",
    "SignatureResult",
    "Signer",
    "Trusted",
    "VersionError",
    "_b64u_decode",
    "b64u",
    "canonical",
    "canonical_key",
    "check_each",
    "check_network",
    "count_signatures",
    "document_hash",
    "electorate",
    "equivocators",
    "expected_members",
    "first_problem",
    "forget",
    "genesis_candidate",
    "next_candidate",
    "own_signature_problem",
    "own_signing_bytes",
    "parse",
    "parse_published",
    "published_bytes",
    "read_published",
    "signature_plan",
    "signature_result",
    "signed_enough",
    "signing_bytes",
    "unsigned_genesis",
    "unsigned_next",
    "verify_chain",
    "verify_genesis",
    "verify_next",
    "verify_signature",
    "with_signatures",
    "x500_name",
]
