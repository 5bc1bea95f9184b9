"""Audience → Properties: the team's typed contact properties, and the built-in billing ones; create one, or delete
one after a warning that says where templates, filters and segments use it. Creating and deleting are for owners
and admins."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from accounts.decorators import team_admin_required
from accounts.selectors import team_object_or_404

from .billing import BILLING_LABELS, BILLING_PROPERTIES
from .conditions import conditions_fields
from .models import ContactProperty, Segment
from .services import ContactConflict, contact_property_create
from .timeline import property_uses


class PropertyForm(forms.Form):
    name = forms.CharField(max_length=64, help_text="Letters, digits and _, starting with a letter: e.g. planName.")
    type = forms.ChoiceField(choices=ContactProperty.Type.choices)


@login_required
def property_index(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "").replace("\x00", "").strip()[:64]
    declared = ContactProperty.objects.filter(team=request.team).order_by("key")
    if q:
        declared = declared.filter(Q(key__icontains=q) | Q(label__icontains=q))
    built_in = [
        (key, BILLING_LABELS.get(key, key), kind)
        for key, kind in BILLING_PROPERTIES.items()
        if not q or q.lower() in key.lower() or q.lower() in BILLING_LABELS.get(key, key).lower()
    ]
    form = PropertyForm(request.POST or None)
    return render(
        request, "contacts/properties.html", {"declared": declared, "built_in": built_in, "q": q, "form": form}
    )


@team_admin_required
def property_new(request: HttpRequest) -> HttpResponse:
    form = PropertyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = contact_property_create(
                team=request.team, name=form.cleaned_data["name"], type=form.cleaned_data["type"]
            )
        except ContactConflict as exc:
            form.add_error("name", str(exc))
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"Property {created.key} ({created.get_type_display().lower()}) created.")
            return redirect("contacts:properties")
    declared = ContactProperty.objects.filter(team=request.team).order_by("key")
    context = {"declared": declared, "built_in": [], "q": "", "form": form}
    return render(request, "contacts/properties.html", context, status=400 if request.method == "POST" else 200)


def segment_uses(team_id: int, key: str) -> list[tuple[str, str]]:
    field = f"contact.properties.{key}"
    return [
        (f"Segment “{segment.name}”", f"{reverse('contacts:list')}?segment={segment.pk}")
        for segment in Segment.objects.filter(team_id=team_id)
        if field in conditions_fields(segment.conditions)
    ]


@team_admin_required
def property_delete(request: HttpRequest, pk: int) -> HttpResponse:
    prop = team_object_or_404(ContactProperty, request.team, pk=pk)
    uses = segment_uses(request.team.pk, prop.key) + property_uses(team_id=request.team.pk, key=prop.key)
    if request.method == "POST":
        prop.delete()
        messages.success(request, f"Property {prop.key} deleted. Its values stay on the contacts, unshown.")
        return redirect("contacts:properties")
    return render(request, "contacts/property_delete.html", {"prop": prop, "uses": uses})
