"""The public ends of email tracking (loops.tracking): the open pixel and the click redirect. No login, no
session, nothing but the token and, for a click, its signed destination."""

import base64

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from . import services
from .tracking import URL_MAX, click_signature_valid, redirectable

# A transparent 1×1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
TOKEN_MAX = 32


@never_cache
@require_safe
def track_open(request: HttpRequest, token: str) -> HttpResponse:
    """The pixel, always (a mail client shows nothing either way); an open is counted for a GET of a known token."""
    if request.method == "GET" and len(token) <= TOKEN_MAX:
        services.email_open_record(token=token)
    return HttpResponse(PIXEL, content_type="image/gif")


@never_cache
@require_safe
def track_click(request: HttpRequest, token: str) -> HttpResponse:
    """To the link's destination, once its signature holds; a click is counted for a GET of a known token. A
    link altered by hand (or cut short by a mail client) leads nowhere: 400 with a page that says so."""
    url = request.GET.get("u", "")
    signed = (
        len(token) <= TOKEN_MAX and len(url) <= URL_MAX and click_signature_valid(token, url, request.GET.get("s", ""))
    )
    if not signed or not redirectable(url):
        return render(request, "loops/link_broken.html", status=400)
    if request.method == "GET":
        services.email_click_record(token=token, url=url)
    return HttpResponseRedirect(url)
