import pytest
from django.core.exceptions import ValidationError

from loops.rendering import email_render, template_check

CONTEXT = {
    "contact": {"first_name": "<b>Ann</b>", "email": "ann@example.com"},
    "event": {"amount_formatted": "$249.00", "hosted_invoice_url": "https://invoice.stripe.com/i/x?a=1&b=2"},
    "unsubscribe_url": "https://loopsync.test/unsubscribe/tok/",
}


def render(body: str, subject: str = "Hi", preview: str = "", context=CONTEXT):
    return email_render(subject=subject, preview_text=preview, body=body, context=context)


def test_values_are_escaped_in_html_and_plain_in_text():
    rendered = render("Hi {{ contact.first_name }},")
    assert "Hi &lt;b&gt;Ann&lt;/b&gt;," in rendered.html and "<b>Ann</b>" not in rendered.html
    assert "Hi <b>Ann</b>," in rendered.text


def test_missing_variable_renders_empty_or_its_default():
    rendered = render("A{{ contact.nothing }}B {{ contact.last_name | default: 'friend' }}", subject="{{ x.y }}!")
    assert "AB friend" in rendered.text
    assert rendered.subject == "!"


def test_markdown_becomes_html_with_a_button_and_text_keeps_the_link():
    rendered = render(
        "# Title\n\n**bold** and a list:\n\n- one\n- two\n\n[Pay now]({{ event.hosted_invoice_url }}){.button}"
    )
    assert "<h1>Title</h1>" in rendered.html and "<strong>bold</strong>" in rendered.html
    assert "<li>one</li>" in rendered.html
    assert 'class="button" style="' in rendered.html
    assert 'href="https://invoice.stripe.com/i/x?a=1&amp;b=2"' in rendered.html
    assert "Pay now: https://invoice.stripe.com/i/x?a=1&b=2" in rendered.text


def test_preview_and_unsubscribe_are_in_both_parts():
    rendered = render("Body", preview="Due: {{ event.amount_formatted }}")
    assert rendered.preview_text == "Due: $249.00"
    assert "Due: $249.00" in rendered.html
    assert CONTEXT["unsubscribe_url"] in rendered.html and CONTEXT["unsubscribe_url"] in rendered.text


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("Hi\n{% if contact.first_name %}", "line 2"),
        ("{{ contact.first_name ", "line 1"),
        ("ok\n\n{{ contact.first_name | shout }}", "unknown filter 'shout'"),
    ],
)
def test_template_that_does_not_parse_is_refused_with_line_and_reason(source, message):
    with pytest.raises(ValidationError) as info:
        template_check(source, field="body")
    assert message in info.value.messages[0] and info.value.messages[0].startswith("The body has an error on")


def test_liquid_has_no_python_attribute_access():
    rendered = render("{{ contact.__class__ }}{{ contact.email.__class__.__mro__ }}")
    assert "class" not in rendered.text.lower()


@pytest.mark.parametrize(
    "name",
    [
        "[Verify your account](https://evil.example/login)",
        "![x](https://tracker.example/pixel.gif)",
        "[a](javascript:alert(1))",
        "Ann\n\n# HUGE",
        "<img src=x onerror=alert(1)>",
        "**Ann** _x_ `code`",
    ],
)
def test_a_value_can_never_become_markup_in_the_html_part(name):
    rendered = render(
        "Hi {{ contact.first_name }}, [Pay now]({{ event.hosted_invoice_url }}){.button}",
        context={**CONTEXT, "contact": {"first_name": name}},
    )
    body = rendered.html.split('<td class="content"', 1)[1].split("</td>", 1)[0]
    assert body.count("<a ") == 1 and 'href="https://invoice.stripe.com/i/x?a=1&amp;b=2"' in body
    for tag in ("<img", "<h1", "<strong", "<em", "<code", 'evil.example"'):
        assert tag not in body
    assert "Verify your account" in body or "HUGE" in body or "x" in body


def test_markdown_characters_in_values_render_as_themselves():
    rendered = render(
        "Dear {{ contact.first_name }}", context={**CONTEXT, "contact": {"first_name": "Jean-Luc (J.) #1 *"}}
    )
    assert "Dear Jean-Luc (J.) #1 *" in rendered.html


def test_unsafe_link_targets_from_values_are_neutralised():
    rendered = render(
        "[Open]({{ contact.website }})", context={**CONTEXT, "contact": {"website": "javascript:alert(1)"}}
    )
    assert "javascript:" not in rendered.html and 'href="#"' in rendered.html
