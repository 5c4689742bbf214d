"""What a Corda node's agent believes: the pinned genesis, then each version that verifies after it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.decisions.chain.canonical import read_published
from shared.decisions.chain.model import ChainError, Member
from shared.decisions.chain.signatures import Check, check_each
from shared.decisions.chain.verify import Trusted, verify_genesis, verify_next


class NodeTrust:
    """What a Corda node's agent believes: the pinned genesis, then each version that verifies against
    the one before it (``verify_genesis`` / ``verify_next``, nothing else). A document that does not
    verify is refused with the rule it breaks and changes nothing; an older or repeated version is
    refused as not the next one. Many versions read at once are verified by ``shared.verification.accept_all``
    (the same checks, the signatures on several cores), which hands this node what verified (``extend``)."""

    def __init__(self, pinned_hash: str, *, check: Check = check_each):
        self.pinned = pinned_hash
        #: How ``accept`` checks a version's signatures (in this thread unless given another way).
        self.check = check
        self.chain: list[Trusted] = []
        self.refused: list[str] = []
        #: The errors behind ``refused``, in the same order (each names its rule: ``error.rule``).
        self.errors: list[ChainError] = []

    @property
    def head(self) -> Trusted | None:
        return self.chain[-1] if self.chain else None

    def accept(self, raw: Mapping[str, Any], *, digest: str | None = None) -> bool:
        try:
            if self.chain:
                trusted = verify_next(self.chain[-1], raw, digest=digest, check=self.check)
            else:
                trusted = verify_genesis(self.pinned, raw, digest=digest, check=self.check)
        except ChainError as error:
            self.refused.append(str(error))
            self.errors.append(error)
            return False
        self.chain.append(trusted)
        return True

    def accept_published(self, raw: bytes) -> bool:
        """A version as its bytes were read: refused unless canonical, then ``accept``."""
        try:
            document, digest = read_published(raw)
        except ChainError as error:
            self.refused.append(str(error))
            self.errors.append(error)
            return False
        return self.accept(document, digest=digest)

    def extend(self, verified: Sequence[Trusted], error: ChainError | None) -> int:
        """Versions verified after the head, in order, and the error of the first refused (None when
        none was): what a reader of many versions at once found (``shared.verification.accept_all``
        verifies them with the same checks as ``accept``). Returns how many were accepted."""
        after = (self.head.version + 1, self.head.hash) if self.head else (0, None)
        if verified and (verified[0].version, verified[0].document.previous) != after:
            raise ValueError(f"version {verified[0].version} does not follow this node's head")
        self.chain.extend(verified)
        if error is not None:
            self.refused.append(str(error))
            self.errors.append(error)
        return len(verified)

    def members(self) -> tuple[Member, ...]:
        """The members the node may transact with: those the verified head lists."""
        return self.head.document.members if self.head else ()
