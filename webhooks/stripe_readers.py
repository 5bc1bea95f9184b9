"""Readers of signed Stripe payloads. Each takes whatever a payload holds: a field of the wrong type
(`"customer_details": "x"`) reads as missing and never raises, so a delivery is kept as ignored ("no email")
rather than lost."""

from datetime import UTC, datetime
from typing import Any

from .money import amount_format, minor_unit_exponent

ID_MAX = 255  # no Stripe id is longer; the columns hold 255
TIME_MAX = 253_402_300_799  # the end of year 9999, where datetime ends
AMOUNT_MAX = 10**12  # Stripe's amounts stop at 8 digits (12 for a few currencies): past that, not an amount


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def event_object(payload: dict) -> dict:
    return as_dict(as_dict(payload.get("data")).get("object"))


def previous_attributes(payload: dict) -> dict:
    return as_dict(as_dict(payload.get("data")).get("previous_attributes"))


def text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def ref(value: Any) -> str:
    """A Stripe reference is an id string, or the object itself when the request expanded it."""
    if isinstance(value, dict):
        value = value.get("id")
    value = text(value)
    return value if len(value) <= ID_MAX else ""


def integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def amount(value: Any) -> int | None:
    value = integer(value)
    return value if value is not None and abs(value) <= AMOUNT_MAX else None


def flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def timestamp(value: Any) -> int | None:
    value = integer(value)
    return value if value is not None and 0 < value <= TIME_MAX else None


def iso_time(value: Any) -> str | None:
    value = timestamp(value)
    return datetime.fromtimestamp(value, tz=UTC).isoformat() if value is not None else None


def money(obj: dict, key: str, currency: str) -> dict[str, Any]:
    """The amount in minor units and formatted; both None when the object has no usable amount, so that a
    template's `{% if event.amount_formatted %}` is false (an empty string is true in Liquid)."""
    value = amount(obj.get(key))
    return {key: value, f"{key}_formatted": amount_format(value, currency) or None}


def major_units(value: int | float | None, currency: str) -> float | None:
    """1900 cents → 19.0: what people read and compare in a filter (`planAmount > 10`)."""
    if value is None:
        return None
    return round(value / 10 ** minor_unit_exponent(currency or "usd"), 4)


def human_date(value: Any) -> str | None:
    """1764892800 → "December 5, 2025": a date as an email says it (UTC), beside the ISO time of templates'
    own formatting."""
    value = timestamp(value)
    if value is None:
        return None
    moment = datetime.fromtimestamp(value, tz=UTC)
    return f"{moment:%B} {moment.day}, {moment.year}"
