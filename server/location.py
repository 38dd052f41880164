"""The camera's location name (`?location=` on the page, `"location"` in the offer): bounded and plain."""

from __future__ import annotations

import re

UNNAMED = "unnamed"
MAX_LENGTH = 64
# Letters and digits of any script, "_", spaces and a little punctuation; starting with a letter or digit
# (docs/API.md and docs/DEPLOY.md state this same rule).
PATTERN = re.compile(r"[^\W_][\w .,:'()&/#+-]*")


def parse_location(value: object) -> str:
    """The location name to record; `UNNAMED` for None or ""; ValueError with the reason otherwise."""
    if value is None:
        return UNNAMED
    if not isinstance(value, str):
        raise ValueError('"location" must be a string')
    name = " ".join(value.split())
    if not name:
        return UNNAMED
    if len(name) > MAX_LENGTH:
        raise ValueError(f'"location" is longer than {MAX_LENGTH} characters')
    if not PATTERN.fullmatch(name):
        raise ValueError(
            '"location" may hold letters, digits, spaces and _ . , : \' ( ) & / # + - only, '
            "and starts with a letter or digit"
        )
    return name
