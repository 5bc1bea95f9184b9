"""Test-mode contacts (`livemode`), who unsubscribed a contact, and the invariants that go with them.

The unique email index is rebuilt to include the mode; it holds a lock on contacts_contact while it is built
(seconds per million contacts). On a large production table, build the new index first with
`CREATE UNIQUE INDEX CONCURRENTLY` under another name and swap names, or run this in a quiet hour.
Contacts unsubscribed before this carry no `unsubscribed_by`: they count as not resubscribable from the
Audience page (only by themselves or the API's suppression removal), the safe reading of "we do not know".
"""

import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_roles_invitations_sender_domains'),
        ('contacts', '0004_audience_search_indexes'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='contact',
            name='contact_team_email_ci_uniq',
        ),
        migrations.RemoveConstraint(
            model_name='contact',
            name='contact_team_user_id_uniq',
        ),
        migrations.AddField(
            model_name='contact',
            name='livemode',
            field=models.BooleanField(default=True),
        ),
        migrations.AddField(
            model_name='contact',
            name='unsubscribed_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='contact',
            name='unsubscribed_by',
            field=models.CharField(blank=True, choices=[('link', 'the contact, with the unsubscribe link'), ('team', 'a team member'), ('api', 'the API')], max_length=8),
        ),
        migrations.AddIndex(
            model_name='contact',
            index=models.Index(condition=models.Q(('livemode', False)), fields=['team', '-created_at', '-id'], name='contact_team_test_idx'),
        ),
        migrations.AddConstraint(
            model_name='contact',
            constraint=models.UniqueConstraint(django.db.models.functions.text.Lower('email'), models.F('team'), models.F('livemode'), name='contact_team_email_ci_uniq'),
        ),
        migrations.AddConstraint(
            model_name='contact',
            constraint=models.UniqueConstraint(condition=models.Q(('user_id', ''), _negated=True), fields=('team', 'livemode', 'user_id'), name='contact_team_user_id_uniq'),
        ),
        migrations.AddConstraint(
            model_name='contact',
            constraint=models.CheckConstraint(condition=models.Q(('unsubscribed_by__in', ['', 'link', 'team', 'api'])), name='contact_unsubscribed_by_valid'),
        ),
        migrations.AddConstraint(
            model_name='contact',
            constraint=models.CheckConstraint(condition=models.Q(('subscribed', False), models.Q(('unsubscribed_at__isnull', True), ('unsubscribed_by', '')), _connector='OR'), name='contact_subscribed_has_no_unsubscribe'),
        ),
    ]
