"""Open and click tracking in an email's HTML: a pixel, and every web link through a signed redirect.

The links are rewritten when the email is queued (loops.services.queueing), so the HTML stored on the
EmailMessage is the HTML the contact got. Each tracked email has a random `tracking_token`; a click link
carries its destination and a signature of (token, destination) made with SECRET_KEY, so the redirect goes
only where an email's author pointed a link, and a link still works after its email is deleted. The text part keeps its
links as written, and so do the unsubscribe link and `mailto:`/`tel:` links.
"""

import html
import re
import secrets
from urllib.parse import quote, unquote, urlencode, urlsplit

from django.conf import settings
from django.core.signing import Signer
from django.urls import reverse
from django.utils.crypto import constant_time_compare

from loopsync.site import absolute_url

from .render_limits import text_bytes

CLICK_SALT = "loops.click"
PIXEL_MARK = "data-loopsync-pixel"
URL_MAX = 4000  # a longer link is left as written: no mail client needs one, and it would double in size

# A tag is scanned to its `>` and its href inside it: linear on any HTML (EMAIL_HTML_LIMIT bounds it anyway).
_A_TAG = re.compile(r"<a\s[^>]*+>", re.IGNORECASE)
_HREF = re.compile(r"""(\shref\s*=\s*)(?:"([^"]*+)"|'([^']*+)')""", re.IGNORECASE)
_PIXEL = re.compile(rf"<img\s[^>]*?{PIXEL_MARK}[^>]*+>")
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


def tracking_token_new() -> str:
    return secrets.token_urlsafe(16)


def html_tracked(markup: str, *, track: bool) -> tuple[str, str | None]:
    """The HTML to store and send, and its tracking token: tracked when `track`, unless that would take it past
    EMAIL_HTML_LIMIT (a link through the redirect is about 150 bytes longer): then as rendered, untracked, rather
    than an email a provider may refuse."""
    if not track:
        return markup, None
    token = tracking_token_new()
    tracked = html_track(markup, token=token)
    if text_bytes(tracked) > settings.EMAIL_HTML_LIMIT:
        return markup, None
    return tracked, token


def _signer() -> Signer:
    return Signer(salt=CLICK_SALT)


def click_signature(token: str, url: str) -> str:
    return _signer().signature(f"{token}\n{url}")


def click_signature_valid(token: str, url: str, signature: str) -> bool:
    return bool(signature) and constant_time_compare(click_signature(token, url), signature)


def open_url(token: str) -> str:
    return absolute_url(reverse("loops:track-open", kwargs={"token": token}))


def click_url(token: str, url: str) -> str:
    query = urlencode({"u": url, "s": click_signature(token, url)}, quote_via=quote)
    return absolute_url(reverse("loops:track-click", kwargs={"token": token})) + "?" + query


def redirectable(url: str) -> bool:
    """A web address the click redirect can send a browser to (Django's redirect parses it: `https://[x` cannot be)."""
    if not url.lower().startswith(("https://", "http://")):
        return False
    try:
        urlsplit(url)
    except ValueError:
        return False
    return True


def _trackable(url: str, untracked_prefixes: tuple[str, ...]) -> bool:
    return redirectable(url.strip()) and len(url) <= URL_MAX and not url.startswith(untracked_prefixes)


def html_track(markup: str, *, token: str) -> str:
    """`markup` with its web links through the click redirect and the open pixel before `</body>`."""
    untracked = (absolute_url(reverse("loops:unsubscribe", kwargs={"token": "x"}).removesuffix("x/")),)

    def link(tag: re.Match[str]) -> str:
        def href(match: re.Match[str]) -> str:
            written = match[2] if match[2] is not None else match[3]
            url = html.unescape(written)
            if not _trackable(url, untracked):
                return match[0]
            return f'{match[1]}"{html.escape(click_url(token, url.strip()))}"'

        return _HREF.sub(href, tag[0], count=1)

    tracked = _A_TAG.sub(link, markup)
    pixel = (
        f'<img src="{html.escape(open_url(token))}" width="1" height="1" alt="" {PIXEL_MARK} '
        'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0">'
    )
    ends = list(_BODY_END.finditer(tracked))
    if not ends:
        return tracked + pixel
    at = ends[-1].start()
    return tracked[:at] + pixel + tracked[at:]


# A click link as html_track writes it: the author's `href` as written (any case, spaces around `=`), our value.
_CLICK_HREF = re.compile(r'(\shref\s*=\s*)"[^"]*?/e/([A-Za-z0-9_-]++)/c/\?u=([^"&]*+)&amp;s=([^"&]*+)"', re.IGNORECASE)


def html_for_viewing(markup: str) -> str:
    """A sent email's HTML to show in the app: without its pixel, and its links to their destinations, so that
    opening it here (or clicking in it) counts no open and no click. Only a link this site signed is undone: an
    author's look-alike (`…/e/x/c/?u=javascript:…`, or any link of an untracked email) stays as it was sent."""

    def undo(match: re.Match[str]) -> str:
        token, url, signature = match[2], unquote(match[3]), unquote(match[4])
        if not click_signature_valid(token, url, signature):
            return match[0]
        return f'{match[1]}"{html.escape(url)}"'

    return _CLICK_HREF.sub(undo, _PIXEL.sub("", markup))
