"""Shared access signature rights of the emulator's key names.

The SDK puts a token on ``$cbs`` for each entity it opens a link to, of the
form ``SharedAccessSignature sr=<audience>&sig=<signature>&se=<expiry>&skn=<key
name>`` (azure-servicebus 7.15, ``_pyamqp/utils.py``). The emulator reads
only the key name and the audience: it checks no signatures and no expiry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qs, unquote_plus

SEND = "Send"
LISTEN = "Listen"
MANAGE = "Manage"
RIGHTS = (SEND, LISTEN, MANAGE)
TOKEN_PREFIX = "SharedAccessSignature "


class AccessDeniedError(Exception):
    """A link or request whose token's key name lacks the right it needs."""


@dataclasses.dataclass(frozen=True)
class Token:
    """The parts of a put token that the emulator uses."""

    audience: str
    key_name: str | None


def parse_token(token: str) -> Token | None:
    """Return the audience and key name of a SAS token, or None when ``token`` is not one."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    fields = parse_qs(token[len(TOKEN_PREFIX) :])
    audience = fields.get("sr", [""])[0]
    key_name = fields.get("skn", [None])[0]
    # The SDK quotes the key name before it url-encodes the whole token, so it is quoted twice.
    return Token(audience, unquote_plus(key_name) if key_name is not None else None)


class KeyRights:
    """The rights of each key name; ``None`` grants every key every right."""

    def __init__(self, rights: Mapping[str, Iterable[str]] | None) -> None:
        self._rights: dict[str, frozenset[str]] | None = None
        if rights is None:
            return
        self._rights = {}
        for key_name, granted in rights.items():
            granted = frozenset(granted)
            unknown = sorted(granted - set(RIGHTS))
            if unknown:
                raise ValueError(
                    f"key_rights[{key_name!r}] has unknown rights {unknown}: use {', '.join(RIGHTS)}"
                )
            if MANAGE in granted:
                granted |= {SEND, LISTEN}
            self._rights[key_name] = granted

    @property
    def enforced(self) -> bool:
        return self._rights is not None

    def require(self, key_name: str | None, right: str, entity: str) -> None:
        """Raise ``AccessDeniedError`` unless ``key_name`` has ``right``."""
        if self._rights is None:
            return
        if key_name is None:
            raise AccessDeniedError(f"no token was put on $cbs for {entity}, so the link is unauthorized")
        granted = self._rights.get(key_name)
        if granted is None:
            raise AccessDeniedError(f"the key name {key_name!r} is not configured on the emulator")
        if right not in granted:
            raise AccessDeniedError(f"the key {key_name!r} lacks the {right} right on {entity}")
