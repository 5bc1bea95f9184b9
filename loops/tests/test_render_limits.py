"""What a template may make the servers do: every render is bounded in time and size, and going over a
limit fails with a message naming it (loops/render_limits.py). Page, send-time and API paths are in
test_render_limit_paths.py."""

import inspect
import sys
import threading
import time
from collections.abc import Mapping

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError

from loops import rendering
from loops.rendering import RenderError, RenderTimeout, email_render, template_check

CONTEXT = {
    "contact": {"email": "ada@example.com", "first_name": "Ada", "properties": {"n": 10**9, "plan": "pro"}},
    "event": {"amount_formatted": "$25.00", "items": [{"name": "Seat", "qty": 2}, {"name": "Seat", "qty": 2}]},
    "unsubscribe_url": "https://loopsync.test/u/",
}


def render(body: str, context=CONTEXT, subject: str = "Hi"):
    return email_render(subject=subject, preview_text="", body=body, context=context)


@pytest.fixture(scope="module", autouse=True)
def _warm():
    """Loading the email layout and compiling regexes happen once per process, not per render."""
    render("warm **up** [x](https://x.example){.button}")


def within_the_deadline(body: str, context=CONTEXT, subject: str = "Hi"):
    """Rendered in less than LIQUID_RENDER_TIMEOUT: the product's own limit (each of these took seconds
    before it, or minutes)."""
    started = time.monotonic()
    rendered = render(body, context, subject=subject)
    assert time.monotonic() - started < django_settings.LIQUID_RENDER_TIMEOUT
    return rendered


def content(rendered) -> str:
    """The email's body, without the layout around it."""
    return rendered.html.split('<td class="content"', 1)[1].split("</td>", 1)[0]


def refusal(body: str) -> str:
    with pytest.raises(ValidationError) as info:
        template_check(body, field="body")
    [message] = info.value.messages
    return message


LOOP_LIMIT = "loops are limited to 10,000 iterations (LIQUID_LOOP_LIMIT)"
LIST_LIMIT = "a list is limited to 10,000 items (LIQUID_LOOP_LIMIT)"
VALUE_LIMIT = "a value is limited to 262,144 bytes (LIQUID_OUTPUT_LIMIT)"


# --- loops ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "{% for i in (1..100000000) %}{% endfor %}",  # the issue's: held a gunicorn worker until killed
        "{% for i in (1..100000000) reversed %}{% endfor %}",  # python-liquid lists these before checking
        "{% tablerow i in (1..100000000) %}{% endtablerow %}",
        "{% for a in (1..1000) %}{% for b in (1..1000) %}{% for c in (1..1000) %}{% endfor %}{% endfor %}{% endfor %}",
        "{% for a in (1..6000) %}{% endfor %}{% for b in (1..6000) %}{% endfor %}",  # one after the other
        "{% liquid\nfor i in (1..100000000)\necho i\nendfor %}",
    ],
)
def test_a_loop_past_the_limit_is_refused_naming_it(body):
    assert refusal(body) == f"The body stopped rendering on line 1: {LOOP_LIMIT}"


def test_a_loop_within_the_limit_renders():
    assert render("{% for i in (1..9999) %}{% endfor %}{{ 'done' }}").text.startswith("done")


def test_a_loop_over_a_contact_property_passes_the_sample_check_and_fails_for_a_big_value():
    body = "{% for i in (1..contact.properties.n) %}.{% endfor %}"
    template_check(body, field="body")  # the sample contact has no `n`
    with pytest.raises(RenderError, match=r"The body stopped rendering on line 1: loops are limited"):
        render(body)
    small = {**CONTEXT, "contact": {**CONTEXT["contact"], "properties": {"n": 3}}}
    assert render(body, small).text.startswith("...")


def test_the_limit_is_the_setting(settings):
    settings.LIQUID_LOOP_LIMIT = 100
    assert refusal("{% for i in (1..101) %}{% endfor %}").endswith(
        "loops are limited to 100 iterations (LIQUID_LOOP_LIMIT)"
    )
    template_check("{% for i in (1..100) %}{% endfor %}", field="body")


# --- filters: one step that must not be unbounded ------------------------------------------------


@pytest.mark.parametrize(
    ("body", "limit"),
    [
        ("{{ (1..100000000) | join }}", LIST_LIMIT),
        ("{{ (1..100000000) | map: 'x' | size }}", LIST_LIMIT),
        ("{{ (1..100000000) | sort | first }}", LIST_LIMIT),
        ("{% assign l = (1..100000000) %}{{ l | reverse | first }}", LIST_LIMIT),
        # 20,000 single characters: more items than a list may have
        ("{% capture s %}{% for i in (1..2000) %}aaaaaaaaaa{% endfor %}{% endcapture %}{{ s | split: '' | size }}",
         LIST_LIMIT),
        # the square of its input: 33 × 64 characters, then 2,113 × 2,112
        ('{% assign s = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" %}'
         '{% assign t = s | replace: "", s %}{% assign u = t | replace: "", t %}{{ u | size }}', VALUE_LIMIT),
        # a list of 4,096 copies of one 256-character string, joined (sizeof counts only the pointers)
        ('{% capture s %}{% for i in (1..32) %}xxxxxxxx{% endfor %}{% endcapture %}{% assign l = s | split: "," %}'
         '{% for i in (1..12) %}{% assign l = l | concat: l %}{% endfor %}{{ l | join: "" | size }}', VALUE_LIMIT),
        ('{% assign l = "a,b" | split: "," %}{{ l | join: "' + "-" * 9000 + '" | size }}', None),
    ],
)  # fmt: skip
def test_a_filter_cannot_make_or_take_a_huge_value(body, limit):
    if limit is None:  # within the limits: renders
        assert render(body).text.startswith("9002")
        return
    assert refusal(body) == f"The body stopped rendering on line 1: {limit}"


def test_the_105_byte_doubling_bomb_fails_with_the_value_limit():
    bomb = '{% assign s = "xxxxxxxxxxxxxxx" %}{% for i in (1..28) %}{% assign s = s | append: s %}{% endfor %}{{ s }}'
    assert len(bomb) == 105  # it asked for 4 GB
    assert refusal(bomb) == f"The body stopped rendering on line 1: {VALUE_LIMIT}"


def test_capture_doubling_fails_with_the_output_or_namespace_limit():
    bomb = (
        "{% capture s %}xxxxxxxxxxxxxxxx{% endcapture %}"
        "{% for i in (1..30) %}{% capture s %}{{ s }}{{ s }}{% endcapture %}{% endfor %}"
    )
    message = refusal(bomb)
    assert "(LIQUID_OUTPUT_LIMIT)" in message or "(LIQUID_NAMESPACE_LIMIT)" in message


def test_variables_are_limited_in_all(settings):
    settings.LIQUID_NAMESPACE_LIMIT = 10_000
    body = "{% capture a %}{% for i in (1..700) %}xxxxxxxx{% endfor %}{% endcapture %}{% assign b = a %}"
    assert refusal(body) == (
        "The body stopped rendering on line 1: variables made with assign and capture are limited to "
        "10,000 bytes in all (LIQUID_NAMESPACE_LIMIT)"
    )


def test_output_is_limited(settings):
    settings.LIQUID_OUTPUT_LIMIT = 1000
    assert refusal("{% for i in (1..101) %}xxxxxxxxxx{% endfor %}") == (
        "The body stopped rendering on line 1: its output is limited to 1,000 bytes (LIQUID_OUTPUT_LIMIT)"
    )


def test_numbers_cannot_grow_without_end():
    body = "{% assign x = 10 %}{% for i in (1..20) %}{% assign x = x | times: x %}{% endfor %}{{ x | divided_by: 7 }}"
    assert refusal(body) == "The body stopped rendering on line 1: numbers are limited to 100 digits"
    assert render("{{ 123456789012 | times: 1000 | plus: 1 }}").text.startswith("123456789012001")


def test_uniq_stays_linear_and_keeps_its_meaning():
    subject = "{% assign l = (1..10000) | join: ',' | split: ',' %}"
    subject += "{{ l | uniq | size }} {{ event.items | uniq | size }}"
    assert within_the_deadline("x", subject=subject).subject == "10000 1"  # python-liquid's: quadratic
    assert render("{{ 'b,a,b,c,a' | split: ',' | uniq | join: '' }}").text.startswith("bac")


def test_date_leaves_long_text_as_it_is():
    digits = "1" * 5000  # dateutil takes minutes over text like this
    context = {**CONTEXT, "contact": {"email": "a@b.c", "code": digits}}
    assert render("{{ contact.code | date: '%Y' }}", context).text.startswith(digits)
    assert render("{{ '2026-03-04' | date: '%d/%m/%Y' }}").text.startswith("04/03/2026")


def test_strip_html_is_linear_and_never_crashes():
    context = {**CONTEXT, "contact": {"email": "a@b.c", "bio": "<a\n" * 80_000}}
    within_the_deadline("x", context, subject="{{ contact.bio | strip_html | size }}")  # HTMLParser: a second
    crash = {**CONTEXT, "contact": {"email": "a@b.c", "bio": "<![" * 100 + ">"}}
    render("x", crash, subject="{{ contact.bio | strip_html }}")  # HTMLParser raised an AssertionError: a 500
    assert render(
        "{{ '<p>Hi <b>Ann</b></p><script>x()</script><!-- no --><style>p{}</style>!' | strip_html }}"
    ).text.startswith("Hi Ann!")


def test_concat_takes_a_range_and_says_what_else_it_was_given():
    # python-liquid's own failed with "LiquidError.__init__() missing 1 required keyword-only argument"
    assert render("{{ (1..3) | concat: (4..5) | join: ',' }}").text.startswith("1,2,3,4,5")
    assert refusal("{{ (1..3) | concat: 'x' }}") == (
        "The body has an error on line 1: concat expected an array, found text"
    )


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ("{% for i in (1..3) limit: 'x' %}{{ i }}{% endfor %}", "text"),  # was "found Markup"
        ("{% for i in (1..3) offset: contact.properties.plan %}{{ i }}{% endfor %}", "text"),
        ("{% assign b = 'inf' | plus: 0 %}{% for i in (1..3) limit: b %}{{ i }}{% endfor %}", "infinity"),
    ],
)
def test_a_loop_argument_that_is_no_number_says_what_it_is(body, found):
    with pytest.raises(RenderError) as info:
        render(body)
    assert str(info.value) == f"The body has an error on line 1: expected a whole number, found {found}"


def test_an_offset_past_the_loop_limit_is_refused_for_any_list():
    body = "{% assign l = 'a,b' | split: ',' %}{% for i in l offset: 10001 %}{{ i }}{% endfor %}"
    assert refusal(body) == (
        "The body stopped rendering on line 1: a loop's offset is limited to 10,000 (LIQUID_LOOP_LIMIT)"
    )
    assert render("{% assign l = 'a,b,c' | split: ',' %}{% for i in l offset: 1 %}{{ i }}{% endfor %}").text.startswith(
        "bc"
    )


def test_a_range_longer_than_python_counts_loops_with_a_limit():
    # python-liquid: "range literal length limit reached", naming no limit
    assert render("{% for i in (1..100000000000000000000000) limit: 2 %}{{ i }}{% endfor %}").text.startswith("12")
    assert refusal("{% for i in (1..100000000000000000000000) %}{% endfor %}") == (
        f"The body stopped rendering on line 1: {LOOP_LIMIT}"
    )


@pytest.mark.parametrize("operator", ["and", "or"])
def test_thousands_of_and_or_in_one_condition_are_refused_naming_the_limit(operator):
    # python-liquid parses them by recursion: "unexpected liquid parsing error" past about 500
    body = "{% if true " + f" {operator} true" * 2000 + " %}x{% endif %}"
    assert refusal(body) == "The body has an error on line 1: an expression is limited to 100 'and' and 'or'"
    within = "{% if true " + f" {operator} true" * 100 + " %}x{% endif %}"
    assert render(within).text.startswith("x")
    assert render("{% if contact.first_name == 'Ada and Bob or Cy' or true %}x{% endif %}").text.startswith("x")


def test_a_template_too_deep_for_the_parser_is_refused_naming_why():
    """python-liquid turned the parser's RecursionError into "unexpected liquid parsing error". A stack
    nearly used up stands for a template that nests deeper than Python's stack goes."""
    body = "{% if true %}" * 25 + "x" + "{% endif %}" * 25
    rendering._parsed.clear()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 40)
    try:
        with pytest.raises(RenderError) as info:
            rendering._render("body", body, html=False, context={})
    finally:
        sys.setrecursionlimit(limit)
    assert str(info.value) == "The body stopped rendering: an expression or block is nested too deeply"


def test_a_filter_failing_on_a_value_is_a_template_error_not_a_crash():
    with pytest.raises(RenderError, match="The body has an error on line 1: date: "):
        render("{{ '99999999999999999999' | date: '%Y' }}")


# --- nesting, partials, the lexer and the source -------------------------------------------------


def test_nesting_is_limited():
    body = "{% if true %}" * 31 + "x" + "{% endif %}" * 31
    assert refusal(body) == (
        "The body stopped rendering on line 1: blocks can be nested at most 30 deep (LIQUID_NESTING_LIMIT)"
    )


@pytest.mark.parametrize("tag", ["include", "render"])
def test_partials_are_not_available(tag):
    # No partials exist, so these could only fail at send time or recurse: refused when saved.
    assert refusal(f"{{% {tag} 'footer' %}}") == f"The body has an error on line 1: unexpected tag '{tag}'"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{" * 8000, "'{{' is never closed with '}}'"),  # python-liquid's lexer: quadratic, 11 s for 10,000
        ("ok }}\n" + "{% raw %}" * 1500, "'{% raw %}' is never closed with '{% endraw %}'"),
    ],
)
def test_a_source_that_would_stall_the_lexer_is_refused_at_once(body, reason):
    message = refusal(body)
    assert message.startswith("The body has an error on line") and message.endswith(reason)


@pytest.mark.parametrize(
    "body",
    [
        "{% if " + "(" * 10_000 + " %}{% endif %}",  # python-liquid's expression tokenizer: a second
        "{{ x" + "[ 'a" * 4000 + " }}",
        "{{ " + "(\n" * 9000 + " }}",
    ],
)
def test_an_expression_that_would_stall_the_tokenizer_is_refused_at_once(body):
    message = refusal(body)
    assert message.startswith("The body has an error on line 1: ")
    assert message.endswith("an expression is limited to 100 brackets and parentheses")


def test_brackets_count_per_line_in_a_liquid_tag():
    body = "{% liquid\nassign l = 'a,b' | split: ','\n" + "echo l[0]\n" * 150 + "%}"
    assert render(body).text.startswith("a" * 150)


def test_a_template_longer_than_the_limit_is_refused():
    assert refusal("x" * 20_001) == (
        "The body is too long: a template is limited to 20,000 characters (LIQUID_TEMPLATE_LIMIT)"
    )


def test_unclosed_braces_in_text_and_in_strings_still_work():
    assert render("{% assign x = '{{' %}{{ x }} {% raw %}{{ {% endraw %} and }} too").text.startswith(
        "{{ {{  and }} too"
    )


# --- the deadline --------------------------------------------------------------------------------

# 10,000 iterations of 40 filters each, under every other limit: seconds of work on any machine.
SLOW = "{% for i in (1..10000) %}{% assign x = 'a'" + " | append: 'b'" * 40 + " %}{% endfor %}"


def test_a_render_past_the_deadline_fails_naming_it(settings):
    settings.LIQUID_RENDER_TIMEOUT = 0.01
    with pytest.raises(RenderTimeout) as info:
        render(SLOW)
    assert str(info.value) == (
        "The body stopped rendering on line 1: rendering is limited to 0.01 s (LIQUID_RENDER_TIMEOUT)"
    )


def test_a_save_check_gets_half_the_budget_a_send_has(settings):
    """So a template that passes its check has room to spare when sent, on a busier machine."""
    settings.LIQUID_RENDER_TIMEOUT = 0.01
    assert refusal(SLOW) == (
        "The body stopped rendering on line 1: a template must render within 0.005 s when checked, half of "
        "LIQUID_RENDER_TIMEOUT (0.01 s), so that it renders in time when sent"
    )


class _Slow(Mapping):
    """A contact's values that keep the render waiting at every lookup, as a machine too busy to give it
    the CPU does (time that is not the template's)."""

    def __init__(self, values: dict, pause: float) -> None:
        self._values, self._pause = values, pause

    def __getitem__(self, key):
        time.sleep(self._pause)
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)


def test_time_the_render_spends_waiting_does_not_count_against_its_budget(settings):
    # A wall-clock deadline failed templates that render in time whenever the machine was busy.
    settings.LIQUID_RENDER_TIMEOUT = 0.2
    contact = _Slow({"email": "a@b.c", "first_name": "Ada"}, pause=0.02)  # 20 lookups: 0.4 s waiting
    body = "{% for i in (1..20) %}{{ contact.first_name }}{% endfor %}"
    assert render(body, {**CONTEXT, "contact": contact}).text.startswith("Ada" * 20)


def test_a_render_kept_waiting_still_ends_at_five_times_its_budget(settings):
    settings.LIQUID_RENDER_TIMEOUT = 0.05
    contact = _Slow({"email": "a@b.c", "first_name": "Ada"}, pause=0.02)  # 1,000 lookups: 20 s waiting
    body = "{% for i in (1..1000) %}{{ contact.first_name }}{% endfor %}"
    started = time.monotonic()
    with pytest.raises(RenderTimeout) as info:
        render(body, {**CONTEXT, "contact": contact})
    assert str(info.value) == (
        "The body stopped rendering on line 1: rendering took over 0.25 s on the clock, 5 times its budget "
        "(LIQUID_RENDER_TIMEOUT): the server is busy, try again"
    )
    assert time.monotonic() - started < 2.5  # 10 times the backstop: the render did not wait 20 s


def test_walking_a_huge_value_counts_against_the_budget(settings):
    """Values are made inert (escaped) for the HTML part before the render: a value of millions of items
    is walked within the budget too, not before it is looked at."""
    settings.LIQUID_RENDER_TIMEOUT = 0.1
    context = {**CONTEXT, "event": {"items": ["a"] * 5_000_000}}  # seconds to walk
    started = time.monotonic()
    with pytest.raises(RenderTimeout, match=r"rendering is limited to 0.1 s \(LIQUID_RENDER_TIMEOUT\)"):
        render("Hi", context)
    assert time.monotonic() - started < 1.0  # 10 times the budget


def test_the_deadline_works_in_any_thread(settings):
    """No signal: a request thread (runserver) or a Celery threads-pool worker is stopped the same way,
    on its own CPU time."""
    settings.LIQUID_RENDER_TIMEOUT = 0.01
    outcome = []

    def work():
        try:
            render(SLOW)
            outcome.append("rendered")
        except RenderError as exc:
            outcome.append(str(exc))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=60)
    assert outcome == ["The body stopped rendering on line 1: rendering is limited to 0.01 s (LIQUID_RENDER_TIMEOUT)"]


def test_checking_and_rendering_share_one_deadline(settings):
    """An email is one budget: three parts that each take most of it do not get three."""
    from loops.render_limits import render_deadline

    settings.LIQUID_RENDER_TIMEOUT = 0.01
    with render_deadline(), pytest.raises(RenderError, match="LIQUID_RENDER_TIMEOUT"):
        template_check("{{ 'quick' }}", field="subject")
        render(SLOW)


# --- the email's size ----------------------------------------------------------------------------

# 62 characters: 10,000 lines of 25 nested quotes, 6.75 MB of HTML from 250 KB of Markdown
QUOTES = "{% for i in (1..10000) %}>>>>>>>>>>>>>>>>>>>>>>>>>{% endfor %}"
HTML_LIMIT = "an email's HTML is limited to 1,048,576 bytes (EMAIL_HTML_LIMIT)"


def test_markdown_that_multiplies_its_input_is_refused_when_saved_naming_the_html_limit():
    assert refusal(QUOTES) == f"The body is too big as HTML: {HTML_LIMIT}"
    with pytest.raises(RenderError, match=r"\(EMAIL_HTML_LIMIT\)"):
        render(QUOTES)


def test_the_html_limit_is_the_setting(settings):
    settings.EMAIL_HTML_LIMIT = 20_000
    body = "{% for i in (1..300) %}>>>>>>>>>>{% endfor %}"
    assert refusal(body) == "The body is too big as HTML: an email's HTML is limited to 20,000 bytes (EMAIL_HTML_LIMIT)"
    settings.EMAIL_HTML_LIMIT = 1024 * 1024
    assert len(render(body).html) > 20_000


# --- linear-time Markdown and text ---------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "[" * 8000,  # 17 s to preview with python-markdown and the old link regex
        "![" * 4000,
        "[a](" * 2000,
        "<a b='" * 1300,
        "*\n" * 4000,
        "1. " * 3000,  # python-markdown: RecursionError
    ],
)
def test_pathological_bodies_render_within_the_products_deadline(body):
    assert within_the_deadline(body).text.strip()


@pytest.mark.parametrize("char", ["[", "*", "_", "<", "&", "`", "\\"])
def test_a_50_kb_value_renders_within_the_products_deadline(char):
    value = char * 50_000  # 10 to 25 s with python-markdown and the old text regexes
    rendered = within_the_deadline("{{ contact.note }}", {**CONTEXT, "contact": {"email": "a@b.c", "note": value}})
    assert value in rendered.text
    assert "<a " not in content(rendered)


def test_nested_emphasis_and_links_in_a_value_stay_text():
    value = "*a _b **c [d](e) " * 3000
    rendered = within_the_deadline("{{ contact.note }}", {**CONTEXT, "contact": {"email": "a@b.c", "note": value}})
    body = content(rendered)
    assert "<em>" not in body and "<strong>" not in body and "<a " not in body


def test_text_part_keeps_links_and_bold_and_drops_the_button_mark():
    rendered = render(
        "**Due** now: [Pay now](https://pay.example/i){.button} or [https://x.example](https://x.example)"
    )
    assert rendered.text.startswith("Due now: Pay now: https://pay.example/i or https://x.example")
    assert rendered.html.count('class="button"') == 1


def test_a_value_cannot_make_a_button():
    context = {**CONTEXT, "contact": {"email": "a@b.c", "name": "{.button}"}}
    rendered = render("[Open](https://x.example){{ contact.name }}", context)
    assert 'class="button"' not in rendered.html and "{.button}" in rendered.html
