from datetime import UTC, datetime, timedelta

import pytest

from contacts.models import Contact
from contacts.services import contact_sync, name_split

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Jane Austen", ("Jane", "Austen")),
        ("  Jean  Claude Van Damme ", ("Jean", "Claude Van Damme")),
        ("Cher", ("Cher", "")),
        ("", ("", "")),
        (None, ("", "")),
        ("Ana\tMaría", ("Ana", "María")),
    ],
)
def test_name_split_at_first_whitespace_run(name, expected):
    assert name_split(name) == expected


def test_creates_contact_with_trimmed_email_and_split_name(team):
    result = contact_sync(
        team=team, email="  Jane@Example.com ", full_name="Jane Austen", stripe_customer_id="cus_1", event_created=T0
    )
    contact = result.contact
    assert result.created
    assert (contact.email, contact.first_name, contact.last_name) == ("Jane@Example.com", "Jane", "Austen")
    assert (contact.source, contact.subscribed, contact.stripe_customer_id) == ("Stripe webhook", True, "cus_1")
    assert contact.stripe_event_created == T0


def test_matches_existing_contact_case_insensitively(team):
    first = contact_sync(team=team, email="jane@example.com", full_name="Jane Austen").contact
    again = contact_sync(team=team, email="JANE@EXAMPLE.COM", full_name="Jane Bennet")
    assert not again.created and again.contact.pk == first.pk
    assert Contact.objects.count() == 1
    assert again.contact.last_name == "Bennet"


def test_known_name_is_never_replaced_by_an_empty_one(team):
    contact_sync(team=team, email="jane@example.com", full_name="Jane Austen", event_created=T0)
    contact = contact_sync(team=team, email="jane@example.com", full_name="", event_created=T0 + timedelta(1)).contact
    assert (contact.first_name, contact.last_name) == ("Jane", "Austen")
    contact = contact_sync(
        team=team, email="jane@example.com", full_name="Janet", event_created=T0 + timedelta(2)
    ).contact
    assert (contact.first_name, contact.last_name) == ("Janet", "Austen")


def test_older_event_does_not_overwrite_newer_name(team):
    contact_sync(team=team, email="jane@example.com", full_name="Jane Bennet", event_created=T0 + timedelta(hours=1))
    result = contact_sync(team=team, email="jane@example.com", full_name="Jane Austen", event_created=T0)
    assert not result.applied
    contact = Contact.objects.get()
    assert (contact.first_name, contact.last_name) == ("Jane", "Bennet")
    assert contact.stripe_event_created == T0 + timedelta(hours=1)


def test_older_event_still_fills_what_is_missing(team):
    contact_sync(team=team, email="jane@example.com", full_name="", event_created=T0 + timedelta(hours=1))
    contact = contact_sync(
        team=team, email="jane@example.com", full_name="Jane Austen", stripe_customer_id="cus_9", event_created=T0
    ).contact
    assert (contact.first_name, contact.last_name, contact.stripe_customer_id) == ("Jane", "Austen", "cus_9")


def test_email_change_moves_the_contact(team):
    old = contact_sync(team=team, email="old@example.com", full_name="Ada Lovelace", event_created=T0).contact
    result = contact_sync(
        team=team, email="new@example.com", previous_email="OLD@example.com", event_created=T0 + timedelta(1)
    )
    assert result.contact.pk == old.pk and not result.created
    assert list(Contact.objects.values_list("email", "first_name")) == [("new@example.com", "Ada")]


def test_email_change_onto_an_existing_contact_keeps_both(team):
    contact_sync(team=team, email="old@example.com", full_name="Old Address")
    existing = contact_sync(team=team, email="new@example.com", full_name="New Address").contact
    result = contact_sync(team=team, email="new@example.com", previous_email="old@example.com", full_name="Ada L")
    assert result.contact.pk == existing.pk
    assert sorted(Contact.objects.values_list("email", flat=True)) == ["new@example.com", "old@example.com"]


def test_stale_email_change_does_not_move_the_contact(team):
    contact_sync(team=team, email="old@example.com", event_created=T0 + timedelta(hours=2))
    contact_sync(team=team, email="new@example.com", previous_email="old@example.com", event_created=T0)
    assert sorted(Contact.objects.values_list("email", flat=True)) == ["new@example.com", "old@example.com"]


def test_teams_never_share_contacts(team, other_team):
    mine = contact_sync(team=team, email="jane@example.com", full_name="Jane Austen").contact
    theirs = contact_sync(team=other_team, email="jane@example.com", full_name="Someone Else").contact
    assert mine.pk != theirs.pk
    mine.refresh_from_db()
    assert (mine.first_name, mine.last_name) == ("Jane", "Austen")


def test_blank_email_is_refused(team):
    with pytest.raises(ValueError):
        contact_sync(team=team, email="   ")


def test_late_event_for_an_address_the_customer_left_updates_the_moved_contact(team):
    contact_sync(team=team, email="a@example.com", stripe_customer_id="cus_1", event_created=T0)
    contact_sync(
        team=team,
        email="b@example.com",
        previous_email="a@example.com",
        stripe_customer_id="cus_1",
        event_created=T0 + timedelta(hours=2),
    )
    late = contact_sync(
        team=team,
        email="a@example.com",
        full_name="Ann Late",
        stripe_customer_id="cus_1",
        event_created=T0 + timedelta(hours=1),
    )
    assert list(Contact.objects.values_list("email", flat=True)) == ["b@example.com"]
    assert late.contact.email == "b@example.com" and late.contact.first_name == "Ann"  # filled, not moved back


def test_a_newer_event_at_another_address_of_the_same_customer_is_its_own_contact(team):
    contact_sync(team=team, email="a@example.com", stripe_customer_id="cus_1", event_created=T0)
    contact_sync(team=team, email="billing@example.com", stripe_customer_id="cus_1", event_created=T0 + timedelta(1))
    assert Contact.objects.count() == 2


def test_overlong_names_are_cut_to_fit(team):
    contact = contact_sync(team=team, email="a@example.com", full_name="A" * 300 + " " + "B" * 300).contact
    contact.refresh_from_db()
    assert (len(contact.first_name), len(contact.last_name)) == (150, 150)
