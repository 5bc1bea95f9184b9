"""The indexes tracking adds to the emails table, which is the busiest and may be large: on PostgreSQL they are
built CONCURRENTLY (the table takes writes meanwhile), so this migration is not atomic; elsewhere as usual."""

from django.db import migrations, models

from loopsync.migration_ops import AddConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("loops", "0009_email_tracking"),
    ]

    operations = [
        AddConcurrently(
            model_name="emailmessage",
            constraint=models.UniqueConstraint(
                condition=models.Q(("tracking_token__isnull", False)),
                fields=("tracking_token",),
                name="email_tracking_token_uniq",
            ),
        ),
        AddConcurrently(
            model_name="emailmessage",
            index=models.Index(
                condition=models.Q(("sent_at__isnull", False)), fields=["team", "sent_at"], name="email_team_sent_idx"
            ),
        ),
        AddConcurrently(
            model_name="emailmessage",
            index=models.Index(
                condition=models.Q(("provider_message_id", ""), _negated=True),
                fields=["provider_message_id"],
                name="email_provider_id_idx",
            ),
        ),
    ]
