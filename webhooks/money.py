"""Stripe amounts are integers in the currency's minor unit; these turn them into what people read."""

from decimal import Decimal

# https://docs.stripe.com/currencies#zero-decimal and #three-decimal
ZERO_DECIMAL = frozenset(
    ["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"]
)
THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])
SYMBOLS = {
    "usd": "$",
    "eur": "€",
    "gbp": "£",
    "jpy": "¥",
    "cad": "CA$",
    "aud": "A$",
    "nzd": "NZ$",
    "chf": "CHF ",
    "inr": "₹",
    "krw": "₩",
    "brl": "R$",
    "mxn": "MX$",
    "cny": "CN¥",
    "hkd": "HK$",
    "sgd": "S$",
    "sek": "SEK ",
    "nok": "NOK ",
    "dkk": "DKK ",
    "pln": "zł ",
    "ils": "₪",
}


def minor_unit_exponent(currency: str) -> int:
    currency = currency.lower()
    if currency in ZERO_DECIMAL:
        return 0
    if currency in THREE_DECIMAL:
        return 3
    return 2


def amount_format(amount: int | None, currency: str | None) -> str:
    """24900, "usd" → "$249.00"; 500, "jpy" → "¥500"; unknown currencies keep their code."""
    if amount is None or not currency:
        return ""
    exponent = minor_unit_exponent(currency)
    value = Decimal(amount).scaleb(-exponent)
    sign = "-" if value < 0 else ""
    number = f"{abs(value):,.{exponent}f}"
    symbol = SYMBOLS.get(currency.lower())
    if symbol is None:
        return f"{sign}{number} {currency.upper()}"
    return f"{sign}{symbol}{number}"
