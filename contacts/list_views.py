"""Audience → Mailing lists: the team's lists with their member counts, add, edit, delete (after asking, and
naming the segments and loops that use the list)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from accounts.selectors import team_object_or_404

from .list_forms import MailingListForm
from .models import MailingList
from .selectors import list_segments
from .services import lists as list_services
from .timeline import list_uses


def _mailing_list(request: HttpRequest, pk: int) -> MailingList:
    return team_object_or_404(MailingList, request.team, pk=pk)


@login_required
def list_index(request: HttpRequest) -> HttpResponse:
    team = request.team or None
    lists = MailingList.objects.filter(team=team).annotate(members=Count("listmembership")) if team else []
    return render(request, "contacts/lists.html", {"lists": lists})


def _save(request: HttpRequest, form: MailingListForm, save, message: str) -> HttpResponse | None:
    """Save a valid form with `save(**cleaned_data)`; None (render the form again) when it is not."""
    if request.method != "POST" or not form.is_valid():
        return None
    try:
        mailing_list = save(**form.cleaned_data)
    except ValidationError as exc:  # the name was taken between the form's check and the insert
        form.add_error(None, exc)
        return None
    messages.success(request, message.format(name=mailing_list.name, id=mailing_list.pk))
    return redirect("contacts:lists")


@login_required
def list_new(request: HttpRequest) -> HttpResponse:
    if not request.team:
        return redirect("home")
    team = request.team
    form = MailingListForm(request.POST or None, team=team)
    save = lambda **data: list_services.mailing_list_create(team=team, **data)  # noqa: E731
    return _save(request, form, save, "{name} was created. Its id for the API is {id}.") or render(
        request, "contacts/list_form.html", {"form": form, "title": "Add a mailing list"}
    )


@login_required
def list_edit(request: HttpRequest, pk: int) -> HttpResponse:
    mailing_list = _mailing_list(request, pk)
    name = mailing_list.name  # the form's validation writes the posted name onto the instance
    form = MailingListForm(request.POST or None, instance=mailing_list, team=request.team)
    save = lambda **data: list_services.mailing_list_update(mailing_list=mailing_list, **data)  # noqa: E731
    return _save(request, form, save, "Saved {name}.") or render(
        request,
        "contacts/list_form.html",
        {
            "form": form,
            "title": f"Edit {name}",
            "mailing_list": mailing_list,
            "members": mailing_list.listmembership_set.count(),
        },
    )


@login_required
def list_delete(request: HttpRequest, pk: int) -> HttpResponse:
    mailing_list = _mailing_list(request, pk)
    if request.method == "POST":
        list_services.mailing_list_delete(mailing_list=mailing_list)
        messages.success(request, f"{mailing_list.name} was deleted. Its contacts are still in your audience.")
        return redirect("contacts:lists")
    audience = reverse("contacts:list")
    context = {
        "mailing_list": mailing_list,
        "members": mailing_list.listmembership_set.count(),
        "segments": [
            (segment.name, f"{audience}?segment={segment.pk}")
            for segment in list_segments(team_id=mailing_list.team_id, list_id=mailing_list.pk)
        ],
        "loops": list_uses(team_id=mailing_list.team_id, list_id=mailing_list.pk),
    }
    return render(request, "contacts/list_delete.html", context)
