"""Email rendering: Liquid templates (python-liquid: no file access, no Python attributes) over Markdown.

Values are HTML-escaped in the HTML part (Liquid autoescape) and plain in the text part. A missing
variable renders empty; a template that cannot parse or names an unknown filter is refused on save.
"""

import functools
import re
import threading
from dataclasses import dataclass
from typing import Any

import markdown
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from liquid import Environment
from liquid.exceptions import LiquidError
from markupsafe import escape

_html_env = Environment(autoescape=True)
_text_env = Environment()

BUTTON_STYLE = (
    "display:inline-block;padding:12px 22px;background:#4a5bd4;color:#ffffff;text-decoration:none;"
    "border-radius:6px;font-weight:600"
)
# Sample values used to check a template renders before it is saved.
SAMPLE_CONTEXT = {
    "contact": {"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", "properties": {}},
    "event": {"name": "sample", "amount": 2500, "amount_formatted": "$25.00"},
    "unsubscribe_url": "https://example.com/unsubscribe/sample/",
}


def template_check(source: str, *, field: str = "template") -> None:
    """Raise ValidationError naming the line and the reason when `source` is not a usable template."""
    try:
        _html_env.from_string(source).render(**SAMPLE_CONTEXT)
    except LiquidError as exc:
        line = ""
        token = getattr(exc, "token", None)
        if token is not None and getattr(token, "start_index", None) is not None:
            line = f"line {source.count(chr(10), 0, token.start_index) + 1}: "
        reason = getattr(exc, "message", None) or str(exc).splitlines()[0]
        raise ValidationError(f"The {field} has an error on {line or 'render: '}{reason}") from None


@dataclass(frozen=True)
class Rendered:
    subject: str
    preview_text: str
    html: str
    text: str


def contact_context(contact) -> dict[str, Any]:
    properties = dict(contact.properties or {})
    standard = {
        "id": contact.id,
        "email": contact.email,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "full_name": contact.full_name,
        "source": contact.source,
        "subscribed": contact.subscribed,
        "user_group": contact.user_group,
        "user_id": contact.user_id,
        "properties": properties,
    }
    return {**properties, **standard}  # custom properties also at the top level; standard fields win


def event_context(event) -> dict[str, Any]:
    if event is None:
        return {}
    return {**(event.properties or {}), "name": event.name, "created_at": event.created_at.isoformat()}


_BUTTON_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)\{\s*:?\s*\.button\s*\}")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)(\{[^}]*\})?")


_local = threading.local()
SUBJECT_MAX = 998  # RFC 5322's line limit, and EmailMessage.subject's length
PREVIEW_MAX = 255


def _markdown_to_html(source: str) -> str:
    # Building a Markdown converter costs more than converting; one per thread (they are not shared-safe).
    converter = getattr(_local, "markdown", None)
    if converter is None:
        converter = _local.markdown = markdown.Markdown(
            extensions=["attr_list", "sane_lists", "nl2br"], output_format="html"
        )
    html = _SAFE_HREF.sub('href="#"', converter.reset().convert(source))  # no javascript: or data: links
    return html.replace('class="button"', f'class="button" style="{BUTTON_STYLE}"')


def _markdown_to_text(source: str) -> str:
    text = _LINK.sub(lambda m: m.group(1) if m.group(1) == m.group(2) else f"{m.group(1)}: {m.group(2)}", source)
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text)
    return text.strip() + "\n"


@functools.lru_cache(maxsize=512)
def _parsed(source: str, html: bool):
    """Parsing costs more than rendering; a loop's step is rendered for every contact it reaches."""
    return (_html_env if html else _text_env).from_string(source)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")
_SAFE_HREF = re.compile(r'href="(?!https?:|mailto:|tel:|#)[^"]*"', re.IGNORECASE)


def _inert(value: Any) -> Any:
    """A value as literal text in Markdown that becomes HTML: HTML-escaped, Markdown syntax escaped and
    newlines flattened, so a contact named "[Verify](https://evil)" is shown, never linked."""
    if isinstance(value, str):
        flat = " ".join(value.split()) if "\n" in value or "\r" in value else value
        return escape(_MARKDOWN_SPECIAL.sub(r"\\\1", flat))  # escape() returns Markup: not escaped twice
    if isinstance(value, dict):
        return {key: _inert(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_inert(item) for item in value]
    return value


def email_render(*, subject: str, preview_text: str, body: str, context: dict[str, Any]) -> Rendered:
    # Cut to what the message row holds (and any mail client shows): a long value renders, never fails.
    subject_text = " ".join(_parsed(subject, False).render(**context).split())[:SUBJECT_MAX]
    preview = " ".join(_parsed(preview_text, False).render(**context).split())[:PREVIEW_MAX]
    body_html = _markdown_to_html(_parsed(body, True).render(**_inert(context)))
    body_text = _markdown_to_text(_parsed(body, False).render(**context))
    unsubscribe_url = context.get("unsubscribe_url", "")
    html = render_to_string(
        "loops/email.html",
        {"subject": subject_text, "preview_text": preview, "body_html": body_html, "unsubscribe_url": unsubscribe_url},
    )
    text = body_text + (f"\n--\nUnsubscribe: {unsubscribe_url}\n" if unsubscribe_url else "")
    return Rendered(subject=subject_text, preview_text=preview, html=html, text=text)


EMAIL_TEMPLATE_FIELDS = ("subject", "preview_text", "body")


def templates_check(**sources: str) -> dict[str, list[str]]:
    """`{field: [messages]}` for each template among `sources` (field=source) that cannot be used."""
    errors: dict[str, list[str]] = {}
    for field, source in sources.items():
        try:
            template_check(source, field=field.replace("_", " "))
        except ValidationError as exc:
            errors[field] = exc.messages
    return errors


def email_preview(*, values: dict[str, str], context: dict[str, Any], problems: list[str] = ()) -> dict[str, Any]:
    """What the editors' preview pane shows for the unsaved `values` (subject, preview_text, body):
    `{"errors": [...]}` when a template cannot render (or `problems` says why not), else the rendered
    email and whom it is for."""
    sources = {field: values.get(field) or "" for field in EMAIL_TEMPLATE_FIELDS}
    errors = [message for messages in templates_check(**sources).values() for message in messages] + list(problems)
    if errors:
        return {"errors": errors}
    return {"rendered": email_render(**sources, context=context), "to": context["contact"]["email"]}
