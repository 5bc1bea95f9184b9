"""Audience → bulk actions: add the contacts a filter (or a selection of rows) picks to a mailing list, unsubscribe
or delete them, after a confirmation that states how many. Deleting is for owners and admins."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from accounts.decorators import ADMIN_ONLY, current_membership
from loopsync.ids import parse_id
from loopsync.testdata import test_data_requested

from . import selectors, services
from .models import Contact, MailingList
from .services import BulkAction

SELECTION_MAX = 1_000  # rows ticked on the page


def _contacts(n: int) -> str:
    return f"{n:,} contact{'' if n == 1 else 's'}"


@login_required
def contacts_bulk(request: HttpRequest) -> HttpResponse:
    """GET: what the action would do, and to how many contacts; POST: do it."""
    data = request.POST if request.method == "POST" else request.GET
    action = data.get("action", "")
    back = f"{reverse('contacts:list')}?{urlencode(selectors.audience_params(data, test=True))}"
    if action not in BulkAction.values:
        messages.error(request, "Choose what to do with the contacts.")
        return redirect(back)
    membership = current_membership(request)
    if action == BulkAction.DELETE and not (membership and membership.is_admin):
        raise PermissionDenied(ADMIN_ONLY)
    mailing_list = None
    if action == BulkAction.ADD_TO_LIST:
        list_id = str(data.get("to_list", ""))
        mailing_list = MailingList.objects.filter(team=request.team, pk=parse_id(list_id) or 0).first()
        if mailing_list is None:
            messages.error(request, "Choose the mailing list to add them to.")
            return redirect(back)
    selected = [str(pk) for pk in map(parse_id, data.getlist("ids")[: SELECTION_MAX + 1]) if pk]
    if len(selected) > SELECTION_MAX:
        messages.error(request, f"Tick at most {SELECTION_MAX:,} rows, or use the filter for more.")
        return redirect(back)
    livemode = not test_data_requested(request) and data.get("test") != "1"
    if selected:
        contacts = Contact.objects.filter(team=request.team, livemode=livemode, pk__in=selected)
    else:
        query = selectors.audience_filter(team=request.team, params=data, livemode=livemode)
        contacts = (
            selectors.audience_queryset(team=request.team, filters=query.filters)
            if query.can_match
            else Contact.objects.none()
        )
    try:
        ids = services.bulk_ids(contacts)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(back)
    if request.method != "POST":
        context = {
            "action": BulkAction(action),
            "count": len(ids),
            "mailing_list": mailing_list,
            "selected": selected,
            "params": selectors.audience_params(data, test=True),
            "back": back,
        }
        return render(request, "contacts/bulk_confirm.html", context)
    changed = services.contacts_bulk(team=request.team, ids=ids, action=action, mailing_list=mailing_list)
    rest = len(ids) - changed
    were = f"{rest:,} {'was' if rest == 1 else 'were'}"
    done = {
        BulkAction.ADD_TO_LIST: f"{_contacts(changed)} added to “{mailing_list.name if mailing_list else ''}”"
        f" ({were} on it already).",
        BulkAction.UNSUBSCRIBE: f"{_contacts(changed)} unsubscribed ({were} already).",
        BulkAction.DELETE: f"{_contacts(changed)} deleted.",
    }[BulkAction(action)]
    messages.success(request, done)
    return redirect(back)
