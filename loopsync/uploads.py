"""Uploads refused while they stream in: a file over its limit is never kept whole, in memory or on disk.

Django reads a multipart body the first time `request.POST` or `request.FILES` is touched, and the CSRF
middleware touches it before the view runs, so a view's own upload handler must be in place before that. As
Django's documentation shows for this case, `upload_limited` exempts the view from the middleware's check, adds
the handler, and then runs the view under `csrf_protect`, which makes the same check. A request whose declared
length is far over the limit is answered 413 before its body is read at all.
"""

from collections.abc import Callable
from functools import wraps

from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt, csrf_protect

ENVELOPE_BYTES = 64 * 1024  # the multipart envelope and the form's other fields, beside the file


class SizeLimit(FileUploadHandler):
    """Passes each chunk on to the next handler until the upload's files pass `limit` bytes; then the rest of the
    body is read and dropped (no connection reset: the user gets the page saying why), and `exceeded` is set."""

    def __init__(self, limit: int, request=None):
        super().__init__(request)
        self.limit, self.received, self.exceeded = limit, 0, False

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            self.exceeded = True
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handler makes the file


def upload_limited(limit: int) -> Callable:
    """View decorator: the request's files are refused past `limit` bytes in all (`request.upload_limit.exceeded`
    says so), with CSRF checked as usual."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        protected = csrf_protect(view)

        @csrf_exempt
        @wraps(view)
        def limited(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            declared = request.META.get("CONTENT_LENGTH") or "0"
            if declared.isascii() and declared.isdigit() and int(declared) > limit + ENVELOPE_BYTES:
                # Far over the limit by its own account: refused before a byte of it is read
                return render(request, "upload_too_large.html", {"limit_mb": max(1, limit // 1_000_000)}, status=413)
            handler = SizeLimit(limit, request)
            request.upload_handlers.insert(0, handler)
            request.upload_limit = handler  # type: ignore[attr-defined]
            return protected(request, *args, **kwargs)

        return limited

    return decorator
