"""Which member the CLI acts for, and that member's deployment's settings.

Every command acts as one member's operator through that member's own deployment (docs/contract.md,
"Command line"): ``--member M`` or the environment variable ``CONSORTIUM_MEMBER`` names it. Its
settings are found in this order:

1. the environment, when it holds that member's deployment settings (``CONSORTIUM_MEMBER_ID=M``):
   an operator in Azure exports the Function App's settings into the shell;
2. ``.local/members/M/local.settings.json`` in the current folder or the nearest parent that has
   one: what the local stack wrote for that member's host, so the CLI talks to the host `make up`
   started without any setup. The environment does not override this file, which names another
   storage account than whatever deployment the shell may hold;
3. with no member named at all: the environment if it names a member, else ``local.settings.json``
   (the single local deployment), with the environment over it as the host reads it.

Nothing else is guessed: a member with neither is bad usage, said in one line.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from shared.naming import MEMBER_ID, valid_member_id
from shared.settings import Settings

LOCAL_SETTINGS = "local.settings.json"
#: The environment variable that names the member when ``--member`` does not.
MEMBER_ENV = "CONSORTIUM_MEMBER"
#: The app setting that names the member a deployment serves.
MEMBER_SETTING = "CONSORTIUM_MEMBER_ID"


class NoSettings(Exception):
    """No settings could be found for the member asked for (bad usage: exit 2)."""


def member_settings_file(member_id: str) -> str:
    return f".local/members/{member_id}/{LOCAL_SETTINGS}"


def find_upwards(relative: str, start: Path | None = None) -> Path | None:
    """``relative`` under the current folder or the nearest parent that has it."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / relative
        if candidate.is_file():
            return candidate
    return None


def find_local_settings(start: Path | None = None) -> Path | None:
    """``local.settings.json`` in the current folder or the nearest parent that has one."""
    return find_upwards(LOCAL_SETTINGS, start)


def _values(path: Path) -> dict[str, str]:
    return {k: str(v) for k, v in json.loads(path.read_text()).get("Values", {}).items()}


def chosen_member(flag: str | None = None) -> str | None:
    """The member named by ``--member``, else by ``CONSORTIUM_MEMBER``; None when neither names one."""
    member = flag or os.environ.get(MEMBER_ENV) or None
    if member is not None and not valid_member_id(member):
        source = "--member" if flag else MEMBER_ENV
        raise NoSettings(f"{source} {member!r} must match {MEMBER_ID.pattern}")
    return member


@lru_cache(maxsize=8)
def settings(member: str | None = None) -> Settings:
    """The settings of ``member``'s own deployment (``member`` as :func:`chosen_member` finds it)."""
    member = chosen_member(member)
    environment = dict(os.environ)
    if member is None:
        if environment.get(MEMBER_SETTING):
            return Settings(environment)
        path = find_local_settings()
        if path is None:
            raise NoSettings(
                f"which member? name it with --member M (or {MEMBER_ENV}=M); no {LOCAL_SETTINGS} was found either"
            )
        return Settings({**_values(path), **environment})
    if environment.get(MEMBER_SETTING) == member:
        return Settings(environment)
    path = find_upwards(member_settings_file(member))
    if path is None:
        raise NoSettings(
            f"no settings for {member}: export its deployment's settings ({MEMBER_SETTING}={member}, ...) or run "
            f"`make up`, which writes {member_settings_file(member)}"
        )
    values = _values(path)
    if values.get(MEMBER_SETTING) != member:
        raise NoSettings(f"{path.name} of {member} names {MEMBER_SETTING}={values.get(MEMBER_SETTING)!r}")
    return Settings(values)
