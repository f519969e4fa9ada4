"""``Secret``: a new API key's token as the SDK hands it out. It is shown once by the server and must not
end up in logs, tracebacks or printed results by accident: ``repr``, ``str`` and formatting show stars,
``json.dumps`` refuses it, pickling refuses it. ``reveal()`` gives the token, on purpose."""
from __future__ import annotations

import hmac
import re
from typing import Any, NoReturn

MASK = "**********"
_TOKEN = re.compile(r"^cairn_(?P<key_id>[0-9a-f]{12})_")


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise TypeError("a Secret wraps a non-empty string")
        self._value = value

    def reveal(self) -> str:
        """The token itself: store it (a secret manager, an environment variable), never log it."""
        return self._value

    @property
    def key_id(self) -> str | None:
        """The key id part of a ``cairn_<key id>_<secret>`` token (not secret: it names the key)."""
        return key_id_of(self._value)

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __copy__(self) -> "Secret":
        return self  # immutable

    def __deepcopy__(self, memo: dict) -> "Secret":
        return self

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret is not pickled; store secret.reveal() where secrets belong")


def key_id_of(token: Any) -> str | None:
    """The key id of a token (a string or a ``Secret``), or None if it is not a Cairn token."""
    text = token.reveal() if isinstance(token, Secret) else token
    match = _TOKEN.match(text) if isinstance(text, str) else None
    return match["key_id"] if match else None


def plain(token: "str | Secret | None") -> str | None:
    """The token as a string, for the one place it must be one: the Authorization header."""
    return token.reveal() if isinstance(token, Secret) else token
