"""A member's own signed documents: the one check they share, after the chain's own.

Besides the chain's versions, each member publishes documents that it alone signs, with the
governance key the chain lists for it: its head (``consortium``), its keys document
(``published_keys``), its node-info index and flag day (``node_infos``). ``verify_own`` is their one
check, in python-tuf's order: the strict model parses, the document names the member it is read
for, that document's own rules hold (``rules``), and it is signed over ``chain.own_signing_bytes``
with one of the keys the reader's verified chain lists for that member. Each document words its
refusal with its own ``signed.DocumentError`` subclass (``refuse``), carrying a ``signed.Rule``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar, cast

from pydantic import ValidationError

from shared.decisions import chain
from shared.decisions.signed import DocumentError, Rule, Strict, first_problem

Model = TypeVar("Model", bound=Strict)
#: How a document words a refusal: the rule broken and what broke it, as its own error.
Refuse = Callable[[Rule, str], DocumentError]


class _Own(Protocol):
    """What every member's own document carries: whose it is, the kid it is signed with, the signature."""

    @property
    def member_id(self) -> str: ...

    @property
    def kid(self) -> str: ...

    @property
    def sig(self) -> str: ...


def verify_own(
    raw: Mapping[str, Any],
    model: type[Model],
    *,
    member_id: str,
    keys: Iterable[chain.KeyRef],
    refuse: Refuse,
    rules: Callable[[Model], None] | None = None,
) -> Model:
    """``raw`` as ``model`` if it is ``member_id``'s, passes ``rules`` and is signed with one of ``keys``
    (the key(s) the reader's verified chain lists for ``member_id``); else ``refuse`` of the rule broken:
    ``SHAPE`` with where the model breaks, ``MEMBER`` with the member it names, ``SIGNATURE`` with why."""
    try:
        document = model.model_validate(raw)
    except ValidationError as error:
        raise refuse(Rule.SHAPE, ": ".join(first_problem(error))) from None
    own = cast(_Own, document)
    if own.member_id != member_id:
        raise refuse(Rule.MEMBER, own.member_id)
    if rules is not None:
        rules(document)
    problem = chain.own_signature_problem(raw, kid=own.kid, sig=own.sig, keys=keys)
    if problem:
        raise refuse(Rule.SIGNATURE, problem)
    return document
