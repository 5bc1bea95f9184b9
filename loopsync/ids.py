"""Ids that arrive as text (forms, query strings, JSON keys)."""

BIGINT_MAX = 2**63 - 1


def parse_id(text: object) -> int | None:
    """The positive database id `text` spells in ASCII digits, or None. `"²".isdigit()` is true and
    `int("²")` fails; a 30-digit id overflows the column: neither gets past this."""
    value = str(text)
    if not (value.isascii() and value.isdecimal()) or len(value) > 19:
        return None
    number = int(value)
    return number if 0 < number <= BIGINT_MAX else None
