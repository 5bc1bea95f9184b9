"""Email rendering: Liquid templates (python-liquid: no file access, no Python attributes) over Markdown.

Values are HTML-escaped in the HTML part (Liquid autoescape) and plain in the text part. A missing
variable renders empty; a template that cannot parse or names an unknown filter is refused on save.

Every render is bounded in time and size (loops/render_limits.py, loops/liquid_environment.py),
and so is the email it makes (EMAIL_HTML_LIMIT). Going over a limit is a `RenderError` naming it:
refused on save, shown in place in the editors' preview, and recorded on the run or email at send
time. Time is the one limit that can depend on the machine rather than the template: a save check gets
half of LIQUID_RENDER_TIMEOUT, so what passes has room when sent, and at send time running out of time
is a `RenderTimeout`, which the caller may retry. Markdown is CommonMark, converted by cmark-gfm
(cmarkgfm), which is linear on any input (with python-markdown a body of 8,000 `[` took 17 s to
preview); the regexes here are linear too.
"""

import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import cmarkgfm
from cmarkgfm.cmark import Options
from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from liquid import BoundTemplate
from liquid.exceptions import LiquidError
from markupsafe import escape

from contacts.models import CONTACT_FIELDS

from .liquid_environment import BoundedEnvironment
from .render_limits import (
    RenderTimeoutError,
    deadline_check,
    limit_reason,
    render_deadline,
    template_size_message,
    text_bytes,
)

logger = logging.getLogger(__name__)

_html_env = BoundedEnvironment(autoescape=True)
_text_env = BoundedEnvironment()

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


class RenderError(Exception):
    """A template could not be rendered. The message names the part, the line when known, and why;
    a limit names its setting."""


class RenderTimeout(RenderError):
    """The render ran out of time. The other limits depend only on the template and its values; this one
    also on how busy the machine was, so at send time it is worth another try."""


def _render_error(field: str, source: str, exc: LiquidError) -> RenderError:
    kind = RenderTimeout if isinstance(exc, RenderTimeoutError) else RenderError
    return kind(_message(field, source, exc))


def _message(field: str, source: str, exc: LiquidError) -> str:
    line = ""
    index = getattr(getattr(exc, "token", None), "start_index", None)
    if source and index is not None and index <= len(source):
        index = len(source) if index < 0 else index  # python-liquid's "found end of file": the last line
        line = f"line {source.count(chr(10), 0, index) + 1}"
    limit = limit_reason(exc)
    if limit is not None:
        return f"The {field} stopped rendering{' on ' + line if line else ''}: {limit}"
    reason = getattr(exc, "message", None) or str(exc).splitlines()[0]
    return f"The {field} has an error on {line + ': ' if line else 'render: '}{reason}"


class _ParseCache:
    """Parsed templates by source. Parsing costs more than rendering, and a loop's step is rendered for
    every contact it reaches. Bounded by the characters of source held as well as by entries: every
    keystroke in an editor's live preview is a new source."""

    def __init__(self, *, max_entries: int, max_chars: int) -> None:
        self._templates: OrderedDict[tuple[str, bool], BoundTemplate] = OrderedDict()
        self._chars = 0
        self._max_entries = max_entries
        self._max_chars = max_chars
        self._lock = threading.Lock()  # runserver and Celery's threads pool render in threads

    def get(self, source: str, html: bool) -> BoundTemplate:
        key = (source, html)
        with self._lock:
            template = self._templates.get(key)
            if template is not None:
                self._templates.move_to_end(key)
                return template
        template = (_html_env if html else _text_env).from_string(source)
        with self._lock:
            if key not in self._templates:
                self._templates[key] = template
                self._chars += len(source)
            while len(self._templates) > self._max_entries or self._chars > self._max_chars:
                (old_source, _), _ = self._templates.popitem(last=False)
                self._chars -= len(old_source)
        return template

    def clear(self) -> None:
        with self._lock:
            self._templates.clear()
            self._chars = 0


_parsed = _ParseCache(max_entries=512, max_chars=1_000_000)


def _render(field: str, source: str, *, html: bool, context: dict[str, Any]) -> str:
    """One part of an email, rendered within the limits; RenderError says why not."""
    if len(source) > settings.LIQUID_TEMPLATE_LIMIT:
        raise RenderError(f"The {field} is too long: {template_size_message()}")
    try:
        template = _parsed.get(source, html)
        deadline_check()  # a long template takes a while to parse; that counts too
        return template.render(**context)
    except LiquidError as exc:
        raise _render_error(field, source, exc) from None
    except RecursionError:
        raise RenderError(f"The {field} stopped rendering: its values are nested too deeply") from None
    except (ValueError, TypeError, ArithmeticError, LookupError) as exc:  # python-liquid let one through
        logger.warning("Rendering the %s failed outside Liquid's errors", field, exc_info=True)
        raise RenderError(f"The {field} could not be rendered: {type(exc).__name__}: {exc}") from None


def _in_time(field: str) -> None:
    try:
        deadline_check()
    except LiquidError as exc:
        raise _render_error(field, "", exc) from None


def html_limit_message() -> str:
    return f"an email's HTML is limited to {settings.EMAIL_HTML_LIMIT:,} bytes (EMAIL_HTML_LIMIT)"


def _email_html(*, subject: str, preview_text: str, body_html: str, unsubscribe_url: str) -> str:
    """The HTML part in the email layout. Markdown can make far more HTML than the template rendered
    (62 characters of `>` in a loop made 6.75 MB of nested quotes), so the result is bounded too."""
    html = render_to_string(
        "loops/email.html",
        {"subject": subject, "preview_text": preview_text, "body_html": body_html, "unsubscribe_url": unsubscribe_url},
    )
    if text_bytes(html) > settings.EMAIL_HTML_LIMIT:
        raise RenderError(f"The body is too big as HTML: {html_limit_message()}")
    return html


def _check(field: str, source: str, *, markdown: bool) -> None:
    """Render `source` both ways with the sample values (and the body as the email's HTML); RenderError
    says why not. Runs inside the check's budget."""
    markup = _render(field, source, html=True, context=_inert(SAMPLE_CONTEXT))
    _render(field, source, html=False, context=SAMPLE_CONTEXT)
    if markdown:
        _in_time(field)
        _email_html(
            subject="",
            preview_text="",
            body_html=_markdown_to_html(markup),
            unsubscribe_url=SAMPLE_CONTEXT["unsubscribe_url"],
        )


class _PassedChecks:
    """Templates that passed their check under the current limits. A save checks its templates twice
    (the form's validation, then the service's `full_clean`) and a live preview re-checks the fields
    the author did not touch: each of those is at most one render's work. Only a pass is kept: a
    failure is checked again, since time can depend on the machine. Bounded like `_ParseCache`."""

    def __init__(self, *, max_entries: int, max_chars: int) -> None:
        self._passed: OrderedDict[tuple[Any, ...], int] = OrderedDict()
        self._chars = 0
        self._max_entries = max_entries
        self._max_chars = max_chars
        self._lock = threading.Lock()

    @staticmethod
    def _key(field: str, source: str) -> tuple[Any, ...]:
        limits = tuple(getattr(settings, name) for name in _CHECK_SETTINGS)
        return (field, source, limits)

    def __contains__(self, item: tuple[str, str]) -> bool:
        key = self._key(*item)
        with self._lock:
            if key in self._passed:
                self._passed.move_to_end(key)
                return True
        return False

    def add(self, field: str, source: str) -> None:
        key = self._key(field, source)
        with self._lock:
            if key not in self._passed:
                self._passed[key] = len(source)
                self._chars += len(source)
            while len(self._passed) > self._max_entries or self._chars > self._max_chars:
                _, size = self._passed.popitem(last=False)
                self._chars -= size

    def clear(self) -> None:
        with self._lock:
            self._passed.clear()
            self._chars = 0


_CHECK_SETTINGS = (
    "LIQUID_RENDER_TIMEOUT",
    "LIQUID_TEMPLATE_LIMIT",
    "LIQUID_LOOP_LIMIT",
    "LIQUID_OUTPUT_LIMIT",
    "LIQUID_NAMESPACE_LIMIT",
    "LIQUID_NESTING_LIMIT",
    "EMAIL_HTML_LIMIT",
)
_passed = _PassedChecks(max_entries=256, max_chars=1_000_000)


def template_check(source: str, *, field: str = "template") -> None:
    """Raise ValidationError naming the line and the reason (or the limit) when `source` is not a usable
    template: it must parse, and render both parts with the sample values within every limit, in half
    of LIQUID_RENDER_TIMEOUT (the rest is the margin a send has for a busier machine). The body must also
    make an email within EMAIL_HTML_LIMIT."""
    if (field, source) in _passed:
        return
    with render_deadline(checking=True):
        try:
            _check(field, source, markdown=field == "body")
        except RenderError as exc:
            raise ValidationError(str(exc)) from None
    _passed.add(field, source)


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
        **{f.field: getattr(contact, f.field) for f in CONTACT_FIELDS},
        "full_name": contact.full_name,
        "properties": properties,
    }
    return {**properties, **standard}  # custom properties also at the top level; standard fields win


def event_context(event) -> dict[str, Any]:
    if event is None:
        return {}
    return {**(event.properties or {}), "name": event.name, "created_at": event.created_at.isoformat()}


SUBJECT_MAX = 998  # RFC 5322's line limit, and EmailMessage.subject's length
PREVIEW_MAX = 255

# The author's own HTML passes (a value never does: it is escaped); a newline is a line break.
_CMARK_OPTIONS = Options.CMARK_OPT_UNSAFE | Options.CMARK_OPT_HARDBREAKS
# `[Pay now](…){.button}`, written by the author: a value's braces are escaped (`\{`), so it cannot make
# one. cmark has no attribute syntax, so the mark stands in for it until the link is HTML.
_BUTTON_SYNTAX = re.compile(r"(?<!\\)\{\s*+:?\s*+\.button\s*+\}")
_BUTTON_MARK = "\ue000"  # a private-use character; removed from values (`_inert`)
_SAFE_HREF = re.compile(r'href="(?!https?:|mailto:|tel:|#)[^"]*+"', re.IGNORECASE)


def _buttons(html: str) -> str:
    if _BUTTON_MARK not in html:
        return html
    parts = html.split(_BUTTON_MARK)
    for index, part in enumerate(parts[:-1]):
        start = part.rfind("<a ")
        if part.endswith("</a>") and start >= 0:
            parts[index] = f'{part[:start]}<a class="button" style="{BUTTON_STYLE}" {part[start + 3 :]}'
        else:
            parts[index] = part + "{.button}"  # not after a link: the text as written
    return "".join(parts)


def _markdown_to_html(source: str) -> str:
    html = cmarkgfm.markdown_to_html(_BUTTON_SYNTAX.sub(_BUTTON_MARK, source), options=_CMARK_OPTIONS)
    return _buttons(_SAFE_HREF.sub('href="#"', html))  # no javascript: or data: links


# Linear: link text stops at a bracket and a URL at a parenthesis or space, so no two tries scan the
# same characters; possessive quantifiers never backtrack. (The old `\[([^\]]+)\]…` rescanned the rest
# of the text from every `[`: 8,000 of them took seconds.)
_LINK = re.compile(r"\[([^\[\]\n]++)\]\(([^()\s]++)\)(?:\{[^{}\n]*+\})?")
_BOLD = re.compile(r"\*\*((?:(?!\*\*)[^\n])++)\*\*|__((?:(?!__)[^\n])++)__")


def _markdown_to_text(source: str) -> str:
    text = _LINK.sub(lambda m: m[1] if m[1] == m[2] else f"{m[1]}: {m[2]}", source)
    text = _BOLD.sub(lambda m: m[1] if m[1] is not None else m[2], text)
    return text.strip() + "\n"


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def _inert(value: Any) -> Any:
    """A value as literal text in Markdown that becomes HTML: HTML-escaped, Markdown syntax escaped and
    newlines flattened, so a contact named "[Verify](https://evil)" is shown, never linked."""
    deadline_check()  # a value may hold a great many items: walking them counts against the render's time
    if isinstance(value, str):
        flat = " ".join(value.split()) if "\n" in value or "\r" in value else value
        flat = flat.replace(_BUTTON_MARK, "")
        return escape(_MARKDOWN_SPECIAL.sub(r"\\\1", flat))  # escape() returns Markup: not escaped twice
    if isinstance(value, dict):
        return {key: _inert(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_inert(item) for item in value]
    return value


def email_render(*, subject: str, preview_text: str, body: str, context: dict[str, Any]) -> Rendered:
    """The email for `context`, within LIQUID_RENDER_TIMEOUT, EMAIL_HTML_LIMIT and the other limits;
    RenderError (RenderTimeout for time) says which part went over what."""
    with render_deadline():
        # Cut to what the message row holds (and any mail client shows): a long value renders, never fails.
        subject_text = " ".join(_render("subject", subject, html=False, context=context).split())[:SUBJECT_MAX]
        preview = " ".join(_render("preview text", preview_text, html=False, context=context).split())[:PREVIEW_MAX]
        try:
            inert = _inert(context)
        except RecursionError:
            raise RenderError("The body stopped rendering: its values are nested too deeply") from None
        except LiquidError as exc:  # out of time walking the values
            raise _render_error("body", "", exc) from None
        body_markdown = _render("body", body, html=True, context=inert)
        body_text = _markdown_to_text(_render("body", body, html=False, context=context))
        _in_time("body")
        body_html = _markdown_to_html(body_markdown)
    unsubscribe_url = context.get("unsubscribe_url", "")
    html = _email_html(subject=subject_text, preview_text=preview, body_html=body_html, unsubscribe_url=unsubscribe_url)
    # The text part is the body's Liquid output (at most LIQUID_OUTPUT_LIMIT), its links made shorter.
    text = body_text + (f"\n--\nUnsubscribe: {unsubscribe_url}\n" if unsubscribe_url else "")
    return Rendered(subject=subject_text, preview_text=preview, html=html, text=text)


EMAIL_TEMPLATE_FIELDS = ("subject", "preview_text", "body")


def templates_check(**sources: str) -> dict[str, list[str]]:
    """`{field: [messages]}` for each template among `sources` (field=source) that cannot be used."""
    errors: dict[str, list[str]] = {}
    with render_deadline(checking=True):  # one budget for the whole email, as when it is sent
        for field, source in sources.items():
            try:
                template_check(source, field=field.replace("_", " "))
            except ValidationError as exc:
                errors[field] = exc.messages
    return errors


def email_preview(*, values: dict[str, str], context: dict[str, Any], problems: list[str] = ()) -> dict[str, Any]:
    """What the editors' preview pane shows for the unsaved `values` (subject, preview_text, body):
    `{"errors": [...]}` when a template cannot render (or `problems` says why not), else the rendered
    email and whom it is for. The check has the budget a save's check has and the render the budget a
    send has, one after the other: what saves and sends also previews."""
    sources = {field: values.get(field) or "" for field in EMAIL_TEMPLATE_FIELDS}
    errors = [message for messages in templates_check(**sources).values() for message in messages] + list(problems)
    if errors:
        return {"errors": errors}
    try:  # the sample values passed; this contact's may not (a loop over one of its properties)
        rendered = email_render(**sources, context=context)
    except RenderError as exc:
        return {"errors": [str(exc)]}
    return {"rendered": rendered, "to": context["contact"]["email"]}
