"""Ranges whose bounds a contact's or an event's values set: `(1..contact.properties.n)` with n = 10^18
passes the save check (the sample contact has no `n`) and reaches a worker. python-liquid answered
`contains` by scanning such a range in C and skipped a loop's offset item by item: a render that no
time check can stop, holding the GIL so that no other thread of the process runs either. So each
template here is rendered in a child process the test can kill: a hang is a failure, never a stalled
suite."""

import json
import os
import select
import subprocess
import sys

import pytest
from django.conf import settings as django_settings

LIST_LIMIT = "error: a list is limited to 10,000 items (LIQUID_LOOP_LIMIT)"
# name: (template, its text part, or the error it fails with)
CASES = {
    "contains a text": ("{% if (1..contact.properties.n) contains 'x' %}y{% else %}n{% endif %}", "n"),
    "contains a literal range's text": ("{% if (1..999999999999999999999) contains 'x' %}y{% else %}n{% endif %}", "n"),
    "contains a fraction": ("{% if (1..contact.properties.n) contains 1.5 %}y{% else %}n{% endif %}", "n"),
    "contains a whole float": ("{% if (1..contact.properties.n) contains 5.0 %}y{% else %}n{% endif %}", "y"),
    "contains a number": ("{% if (1..contact.properties.n) contains 5 %}y{% else %}n{% endif %}", "y"),
    "contains a number past its end": (
        "{% if (1..contact.properties.n) contains contact.properties.big %}y{% else %}n{% endif %}",
        "n",
    ),
    "contains a range": (
        "{% if (1..contact.properties.n) contains (1..contact.properties.n) %}y{% else %}n{% endif %}",
        "n",
    ),
    "unless contains": ("{% unless (1..contact.properties.n) contains 'x' %}y{% endunless %}", "y"),
    "elsif contains": ("{% if false %}{% elsif (1..contact.properties.n) contains 'x' %}y{% else %}n{% endif %}", "n"),
    "contains in a liquid tag": (
        "{% liquid\nif (1..contact.properties.n) contains 'x'\necho 'y'\nelse\necho 'n'\nendif %}",
        "n",
    ),
    "contains inside a loop": (
        "{% for i in (1..2) %}{% if (1..contact.properties.n) contains 'x' %}y{% else %}n{% endif %}{% endfor %}",
        "nn",
    ),
    "for with an offset": (
        "{% for i in (1..contact.properties.n) offset: 999999999999999990 %}{{ i }}{% endfor %}",
        "error: a loop's offset is limited to 10,000 (LIQUID_LOOP_LIMIT)",
    ),
    "for with the issue's offset": (
        "{% for i in (1..1000000000) offset:999999990 %}{{ i }}{% endfor %}",
        "error: a loop's offset is limited to 10,000 (LIQUID_LOOP_LIMIT)",
    ),
    "tablerow with an offset": (
        "{% tablerow i in (1..contact.properties.n) offset: 999999999999999990 %}{{ i }}{% endtablerow %}",
        "error: a loop's offset is limited to 10,000 (LIQUID_LOOP_LIMIT)",
    ),
    "for with a limit": ("{% for i in (1..contact.properties.n) limit: 3 %}{{ i }}{% endfor %}", "123"),
    "for reversed with a limit": (
        "{% for i in (1..contact.properties.big) reversed limit: 2 %}{{ i }}{% endfor %}",
        "21",
    ),
    "for continuing": (
        "{% for i in (1..contact.properties.n) limit: 2 %}{{ i }}{% endfor %}"
        "{% for i in (1..contact.properties.n) offset: continue limit: 2 %}{{ i }}{% endfor %}",
        "1234",
    ),
    "for over all of it": (
        "{% for i in (1..contact.properties.n) %}{{ i }}{% endfor %}",
        "error: loops are limited to 10,000 iterations (LIQUID_LOOP_LIMIT)",
    ),
    "when": ("{% case 'x' %}{% when (1..contact.properties.n) %}y{% else %}n{% endcase %}", "n"),
    "equals": ("{% if (1..contact.properties.n) == (1..contact.properties.n) %}y{% else %}n{% endif %}", "y"),
    "size": ("{{ (1..contact.properties.n) | size }}", LIST_LIMIT),
    "first": (
        "{{ (1..contact.properties.n) | first }}",
        LIST_LIMIT,
    ),
    "last": ("{{ (1..contact.properties.n) | last }}", LIST_LIMIT),
    "reverse": (
        "{{ (1..contact.properties.n) | reverse | first }}",
        LIST_LIMIT,
    ),
    "sort": (
        "{{ (1..contact.properties.n) | sort | first }}",
        LIST_LIMIT,
    ),
    "join": ("{{ (1..contact.properties.n) | join }}", LIST_LIMIT),
    "concat": (
        "{{ (1..3) | concat: (1..contact.properties.n) | size }}",
        LIST_LIMIT,
    ),
    "size, first and last of a variable": (
        "{% assign r = (1..contact.properties.big) %}{{ r.size }} {{ r.first }} {{ r.last }}",
        f"{10**24} 1 {10**24}",
    ),
    "output": ("{{ (1..contact.properties.n) }}", f"1..{10**18}"),
}

CHILD = """
import json, os, sys, time
import django
django.setup()
from loops.rendering import RenderError, email_render
context = {"contact": {"email": "a@example.com", "properties": {"n": 10**18, "big": 10**24}}, "unsubscribe_url": ""}
for line in sys.stdin:
    name, body = json.loads(line)
    started = time.monotonic()
    try:
        outcome = email_render(subject="Hi", preview_text="", body=body, context=context).text.strip()
    except RenderError as exc:
        outcome = "error: " + str(exc)
    print(json.dumps([name, outcome, time.monotonic() - started]), flush=True)
"""
CHILD_WAIT_SECONDS = 30  # for the child's answer: far past any render's limit, so only a hang reaches it


def _render_in_children(cases: dict[str, str]) -> dict[str, tuple[str, float] | None]:
    """{name: (outcome, seconds)}, or None for a render that did not end (its child is killed, and the
    cases after it go to a new child)."""
    results: dict[str, tuple[str, float] | None] = {}
    pending = list(cases.items())
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "loopsync.settings", "DEBUG": "true"}
    while pending:
        child = subprocess.Popen(  # noqa: S603 - this file's own script
            [sys.executable, "-c", CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
        )
        child.stdin.write("".join(json.dumps(case) + "\n" for case in pending))
        child.stdin.close()
        try:
            while pending:
                name = pending[0][0]
                ready, _, _ = select.select([child.stdout], [], [], CHILD_WAIT_SECONDS)
                if not ready:
                    results[name] = None
                    pending.pop(0)
                    break
                line = child.stdout.readline()
                if not line:
                    raise AssertionError(f"the child stopped at {name!r}")
                reported, outcome, seconds = json.loads(line)
                assert reported == name
                results[name] = (outcome, seconds)
                pending.pop(0)
        finally:
            child.kill()
            child.wait()
    return results


@pytest.fixture(scope="module")
def rendered():
    return _render_in_children({name: body for name, (body, _) in CASES.items()})


@pytest.mark.parametrize("name", CASES)
def test_a_range_of_any_size_renders_or_fails_at_once(rendered, name):
    expected = CASES[name][1]
    assert rendered[name] is not None, f"{name}: the render never ended"
    outcome, seconds = rendered[name]
    if expected.startswith("error: "):
        reason = expected.removeprefix("error: ")
        assert outcome.startswith("error: The body stopped rendering on line 1: ") and outcome.endswith(reason)
    else:
        assert outcome == expected
    # Under the product's own limit, with a margin: each takes a few milliseconds.
    assert seconds < django_settings.LIQUID_RENDER_TIMEOUT
