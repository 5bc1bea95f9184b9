"""`manage.py api_key create|list|revoke`: the key is printed once, as the last line of `create`."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.services import team_create
from api.models import ApiKey
from api.services import api_key_authenticate, api_key_create

pytestmark = pytest.mark.django_db


def run(*args) -> list[str]:
    out = StringIO()
    call_command("api_key", *args, stdout=out)
    return out.getvalue().splitlines()


def test_create_prints_the_key_last_and_it_works(team):
    lines = run("create", "--team", "Acme", "--name", "CI")
    key = lines[-1]
    api_key = api_key_authenticate(key)
    assert api_key is not None and api_key.team == team and api_key.name == "CI"
    assert any(f"{api_key.prefix}…" in line and "Acme" in line for line in lines[:-1])
    assert all(key not in line for line in lines[:-1])
    assert ApiKey.objects.get().created_by is None


def test_create_by_team_id_with_the_default_name(team):
    key = run("create", "--team", str(team.pk))[-1]
    assert api_key_authenticate(key).team == team and ApiKey.objects.get().name == "API key"


def test_a_name_several_teams_share_is_an_error_listing_their_ids(team):
    twin = team_create(name="Acme")
    with pytest.raises(CommandError, match=rf"ids {team.pk}, {twin.pk}"):
        run("create", "--team", "Acme")
    assert not ApiKey.objects.exists()
    assert api_key_authenticate(run("create", "--team", str(twin.pk))[-1]).team == twin


def test_an_unknown_team_is_an_error(team):
    with pytest.raises(CommandError, match="No team is named 'Initech'"):
        run("create", "--team", "Initech")
    with pytest.raises(CommandError, match="No team"):
        run("list", "--team", "987654")
    assert not ApiKey.objects.exists()


def test_a_bad_name_is_an_error(team):
    with pytest.raises(CommandError, match="at most 120"):
        run("create", "--team", "Acme", "--name", "x" * 121)
    with pytest.raises(CommandError, match="blank"):
        run("create", "--team", "Acme", "--name", "  ")
    assert not ApiKey.objects.exists()


def test_list_shows_keys_without_the_full_key(team, other_team):
    new = api_key_create(team=team, name="Backend")
    api_key_authenticate(new.key)
    old = api_key_create(team=team, name="Old one")
    old.api_key.revoked_at = old.api_key.created_at
    old.api_key.save()
    api_key_create(team=other_team, name="Globex key")
    output = "\n".join(run("list", "--team", "Acme"))
    assert f"{new.api_key.prefix}…" in output and "Backend" in output and "active" in output
    assert f"{old.api_key.prefix}…" in output and "revoked" in output and "never" in output
    assert new.key not in output and old.key not in output and "Globex key" not in output


def test_list_of_a_team_without_keys(team):
    assert run("list", "--team", "Acme") == ["Team 'Acme' has no API key."]


@pytest.mark.parametrize("how", ["prefix", "prefix…", "id"])
def test_revoke_by_prefix_or_id(team, how):
    new = api_key_create(team=team, name="Backend")
    ref = {"prefix": new.api_key.prefix, "prefix…": f"{new.api_key.prefix}…", "id": str(new.api_key.pk)}[how]
    output = "\n".join(run("revoke", ref, "--team", "Acme"))
    assert "Revoked key" in output and new.key not in output
    assert api_key_authenticate(new.key) is None
    assert "already revoked" in "\n".join(run("revoke", ref, "--team", "Acme"))


def test_revoke_cannot_reach_another_teams_key(team, other_team):
    theirs = api_key_create(team=other_team, name="Globex key")
    for ref in [theirs.api_key.prefix, str(theirs.api_key.pk)]:
        with pytest.raises(CommandError, match="has no key"):
            run("revoke", ref, "--team", "Acme")
    assert api_key_authenticate(theirs.key) is not None
