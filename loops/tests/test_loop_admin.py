"""The Django admin edits a loop's steps' content; where a step stands in the tree changes only through the
loops services (the editor, or one step's delete here), which keep the runs under way in place."""

import pytest

from conftest import main_line
from loops.models import LoopStep

pytestmark = pytest.mark.django_db


def _change_page(client, loop) -> str:
    response = client.get(f"/admin/loops/loop/{loop.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def test_the_loop_page_edits_steps_content_never_their_place(superuser_client, team, make_loop):
    loop = make_loop(team)
    html = _change_page(superuser_client, loop)
    assert 'name="steps-0-DELETE"' not in html
    assert 'name="steps-0-parent"' not in html and 'name="steps-0-port"' not in html
    assert 'name="steps-MAX_NUM_FORMS" value="0"' in html  # no new step is accepted
    assert 'name="steps-0-subject"' in html  # content stays editable


def test_deleting_a_step_mends_the_tree(superuser_client, team, make_loop):
    loop = make_loop(team)
    first, *rest = main_line(loop)
    response = superuser_client.post(f"/admin/loops/loopstep/{first.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert main_line(loop) == rest
    assert not LoopStep.objects.filter(pk=first.pk).exists()
