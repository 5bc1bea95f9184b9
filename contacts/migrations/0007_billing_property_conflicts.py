"""Stripe's billing properties are built in from now on (contacts.billing). A team that had declared one of
those names itself keeps its data: with the same type, the declaration goes (the built-in one replaces it) and
the values stay; with another type, its declaration and values move to `<name>Custom`, so that Stripe's state
never overwrites them and their type still holds."""

from django.db import migrations

BUILT_IN = {
    "subscriptionStatus": "string", "planName": "string", "planId": "string", "planInterval": "string",
    "planAmount": "number", "currency": "string", "mrr": "number", "trialEnd": "date",
    "currentPeriodEnd": "date", "canceledAt": "date", "cancelAtPeriodEnd": "boolean", "delinquent": "boolean",
    "ltv": "number", "lastPaymentAt": "date", "lastPaymentFailedAt": "date",
}  # fmt: skip


def _free_key(taken: set[str], key: str) -> str:
    candidate, n = f"{key}Custom", 2
    while candidate in taken:
        candidate, n = f"{key}Custom{n}", n + 1
    return candidate


def forwards(apps, schema_editor):
    ContactProperty = apps.get_model("contacts", "ContactProperty")
    Contact = apps.get_model("contacts", "Contact")
    for prop in ContactProperty.objects.filter(key__in=list(BUILT_IN)).iterator():
        if prop.type == BUILT_IN[prop.key]:
            prop.delete()
            continue
        taken = set(ContactProperty.objects.filter(team_id=prop.team_id).values_list("key", flat=True))
        old, new = prop.key, _free_key(taken, prop.key)
        prop.key, prop.label = new, new if prop.label == old else prop.label
        prop.save(update_fields=["key", "label"])
        for contact in Contact.objects.filter(team_id=prop.team_id, properties__has_key=old).iterator():
            contact.properties[new] = contact.properties.pop(old)
            contact.save(update_fields=["properties"])


class Migration(migrations.Migration):
    dependencies = [("contacts", "0006_stripe_billing")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
