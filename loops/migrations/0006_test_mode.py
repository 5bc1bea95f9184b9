"""Test-mode events are kept apart from live ones (`Event.livemode`).

Before this, a Stripe test-mode event synced a live contact and could start loops that emailed it. Such
events are recognisable: the pipeline wrote `"livemode": false` into their properties. They are marked as
test-mode events here, the loop runs they started that have not finished are stopped, and their emails not
sent yet are skipped, so nothing from test mode still goes to a real customer after the upgrade.
"""

from django.db import migrations, models
from django.utils import timezone

STOPPED_WHY = "stopped: started by a Stripe test-mode event, before test mode was kept apart from live data"
SKIPPED_WHY = "Test mode: started by a Stripe test-mode event, before test mode was kept apart from live data."


def test_mode_events_apart(apps, schema_editor):
    Event = apps.get_model("loops", "Event")
    LoopRun = apps.get_model("loops", "LoopRun")
    EmailMessage = apps.get_model("loops", "EmailMessage")
    test_events = Event.objects.filter(source="stripe", properties__livemode=False)
    test_events.update(livemode=False)
    unfinished = LoopRun.objects.filter(event__in=test_events, status__in=["active", "waiting"])
    now = timezone.now()
    for run in unfinished:
        run.history = [*run.history, {"at": now.isoformat(), "step": None, "what": STOPPED_WHY}]
        run.status, run.next_due_at, run.waiting_for, run.wait_until = "stopped", None, "", None
        run.save(update_fields=["history", "status", "next_due_at", "waiting_for", "wait_until"])
    EmailMessage.objects.filter(run__event__in=test_events, status="queued").update(
        status="skipped", error=SKIPPED_WHY, next_attempt_at=None
    )


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_roles_invitations_sender_domains'),
        ('contacts', '0005_test_mode'),
        ('loops', '0005_transactional_emails'),
    ]

    operations = [
        migrations.AddField(
            model_name='event',
            name='livemode',
            field=models.BooleanField(default=True),
        ),
        migrations.AddIndex(
            model_name='event',
            index=models.Index(condition=models.Q(('livemode', False)), fields=['team', '-created_at', '-id'], name='event_team_test_idx'),
        ),
        migrations.RunPython(test_mode_events_apart, migrations.RunPython.noop),
    ]
