"""How a contact's property values read on its page: yes/no, numbers without a stray ".0", Stripe's times as dates."""

from datetime import datetime

from django import template
from django.utils.formats import date_format

from contacts.billing import BILLING_PROPERTIES

register = template.Library()


@register.filter
def property_value(value, key: str = ""):
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"
    if isinstance(value, str) and BILLING_PROPERTIES.get(key) == "date":
        try:
            return date_format(datetime.fromisoformat(value), "M j, Y H:i") + " UTC"
        except ValueError:
            return value
    return value
