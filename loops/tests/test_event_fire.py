import pytest

from contacts.services import contact_sync
from loops.models import Event
from loops.services import event_fire

pytestmark = pytest.mark.django_db


def test_fires_once_per_idempotency_key(team):
    contact = contact_sync(team=team, email="a@example.com").contact
    first = event_fire(
        team=team, contact=contact, name="failedPayment", properties={"amount": 1}, idempotency_key="evt_1"
    )
    again = event_fire(team=team, contact=contact, name="failedPayment", idempotency_key="evt_1")
    assert first.created and not again.created
    assert again.event.pk == first.event.pk
    assert Event.objects.count() == 1


def test_events_without_key_are_all_recorded(team):
    contact = contact_sync(team=team, email="a@example.com").contact
    event_fire(team=team, contact=contact, name="visited")
    event_fire(team=team, contact=contact, name="visited")
    assert Event.objects.count() == 2


def test_same_key_in_two_teams_is_two_events(team, other_team):
    for t in (team, other_team):
        contact = contact_sync(team=t, email="a@example.com").contact
        assert event_fire(team=t, contact=contact, name="x", idempotency_key="evt_1").created


def test_contact_of_another_team_is_refused(team, other_team):
    contact = contact_sync(team=other_team, email="a@example.com").contact
    with pytest.raises(ValueError):
        event_fire(team=team, contact=contact, name="x")
    assert not Event.objects.exists()
