"""The Django admin changes a loop's steps only through the loops services: on an active loop it offers no
adding, removing or reordering, and what it saves takes the services' checks."""

import pytest

from loops.models import LoopStep
from loops.services import loop_pause

pytestmark = pytest.mark.django_db


def _change_page(client, loop) -> str:
    response = client.get(f"/admin/loops/loop/{loop.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def test_an_active_loop_offers_no_step_to_add_or_remove_and_no_position_to_change(superuser_client, team, make_loop):
    loop = make_loop(team)
    html = _change_page(superuser_client, loop)
    assert 'name="steps-0-DELETE"' not in html and 'name="steps-0-position"' not in html
    assert 'name="steps-MAX_NUM_FORMS" value="0"' in html  # no new step is accepted
    assert 'name="steps-0-subject"' in html  # content stays editable


def test_a_paused_loop_offers_removing_steps_but_never_typing_a_position(superuser_client, team, make_loop):
    loop = loop_pause(loop=make_loop(team))
    html = _change_page(superuser_client, loop)
    assert 'name="steps-0-DELETE"' in html and 'name="steps-0-position"' not in html


def test_a_step_of_an_active_loop_cannot_be_deleted_alone(superuser_client, team, make_loop):
    step = make_loop(team).steps.first()
    response = superuser_client.post(f"/admin/loops/loopstep/{step.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert LoopStep.objects.filter(pk=step.pk).exists()


def test_deleting_a_step_of_a_paused_loop_closes_the_gap(superuser_client, team, make_loop):
    loop = loop_pause(loop=make_loop(team))
    first, *rest = loop.steps.order_by("position")
    response = superuser_client.post(f"/admin/loops/loopstep/{first.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert list(loop.steps.order_by("position").values_list("position", flat=True)) == list(range(1, len(rest) + 1))
