from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from .sending import contact_unsubscribe, unsubscribe_contact_for


@csrf_exempt  # the signed token is the authority; mail clients' one-click POST carries no CSRF token
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks to confirm (link scanners must not unsubscribe anyone); POST unsubscribes, which is
    also what `List-Unsubscribe-Post: List-Unsubscribe=One-Click` sends."""
    contact = unsubscribe_contact_for(token)
    if contact is None:
        return render(request, "loops/unsubscribe.html", {"invalid": True}, status=404)
    if request.method == "POST":
        contact_unsubscribe(contact=contact)
        return render(request, "loops/unsubscribe.html", {"done": True, "email": contact.email})
    if request.method != "GET":
        return HttpResponse(status=405)
    return render(request, "loops/unsubscribe.html", {"email": contact.email, "subscribed": contact.subscribed})
