"""The loop editor's forms: a loop's name and trigger, and one form per kind of step."""

import re
from dataclasses import dataclass

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.db.models import Count

from contacts.builder import ConditionsBuilder, builder_action
from contacts.changes import field_watchable
from contacts.conditions import DIGITS, fields_for
from contacts.models import MailingList

from .models import Loop, LoopStep, TransactionalEmail
from .selectors import team_properties
from .services import event_name_validate, loop_name_taken
from .services.updating import update_step_problems

VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
EVENT_NAME_WIDGET = forms.TextInput(
    attrs={"list": "event-names", "autocomplete": "off", "spellcheck": "false", "placeholder": "e.g. failedPayment"}
)


# The trigger form's rows that belong to one trigger or setting, as `wrapper_attrs`: the page shows a row only
# when its trigger is chosen (static/css/app.css, by :has(), so without JavaScript too)
TRIGGER_ROWS = {
    "trigger_event_name": {"data-for-trigger": "event"},
    "trigger_list": {"data-for-trigger": "list_added"},
    "trigger_field": {"data-for-trigger": "contact_updated"},
    "trigger_from_set": {"data-for-trigger": "contact_updated"},
    "trigger_from": {"data-for-trigger": "contact_updated", "data-row": "trigger-from"},
    "trigger_to_set": {"data-for-trigger": "contact_updated"},
    "trigger_to": {"data-for-trigger": "contact_updated", "data-row": "trigger-to"},
    "frequency": {"data-row": "frequency"},
    "frequency_key": {"data-for-trigger": "event", "data-row": "frequency-key"},
}


class LoopForm(forms.ModelForm):
    """A loop's name, trigger and frequency."""

    class Meta:
        model = Loop
        fields = [
            "name", "trigger", "trigger_event_name", "trigger_list", "trigger_field", "trigger_from_set",
            "trigger_from", "trigger_to_set", "trigger_to", "frequency", "frequency_key",
        ]  # fmt: skip
        labels = {
            "trigger": "Trigger",
            "trigger_event_name": "Event name",
            "trigger_list": "Mailing list",
            "trigger_field": "Field or property",
            "trigger_from_set": "Only from a value",
            "trigger_from": "From",
            "trigger_to_set": "Only to a value",
            "trigger_to": "To",
            "frequency": "How often a contact enters",
            "frequency_key": "Key (an event property)",
        }
        help_texts = {
            "trigger_event_name": "For “Event received”: the event that starts this loop. Pick one your Stripe "
            "endpoints fire or type a new name.",
            "trigger_field": "For “Contact updated”: blank for any change, or e.g. contact.properties.planName.",
            "trigger_from": "Blank means empty (not set).",
            "frequency_key": "For “Once per key”: e.g. invoice_id, so that one invoice that Stripe retries starts "
            "one run.",
        }
        widgets = {"trigger_event_name": EVENT_NAME_WIDGET}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        team_id = self.instance.team_id
        self.fields["trigger_list"].queryset = MailingList.objects.filter(team_id=team_id).order_by("name")
        self.fields["trigger_list"].required = False
        self.fields["frequency"].required = False  # left out: as it was
        for name, attrs in TRIGGER_ROWS.items():
            self.fields[name].wrapper_attrs = attrs  # type: ignore[attr-defined]

    def clean_name(self) -> str:
        name = self.cleaned_data.get("name", "").strip()
        if name and loop_name_taken(team=self.instance.team, name=name, exclude_id=self.instance.pk):
            raise forms.ValidationError("Another loop of your team has this name.")
        return name

    def clean_trigger_event_name(self) -> str:
        return event_name_validate(self.cleaned_data.get("trigger_event_name", ""))

    def clean(self):
        cleaned = super().clean()
        trigger = cleaned.get("trigger")
        if not self.data.get("frequency"):  # a form that leaves the frequency out (or blank) keeps it
            cleaned["frequency"] = self.instance.frequency or Loop.Frequency.EVERY
            cleaned["frequency_key"] = self.instance.frequency_key
        if trigger == Loop.Trigger.CONTACT_ADDED:
            cleaned["frequency"] = Loop.Frequency.ONCE  # a contact is added once
        # A field the form refused already says why: one message each
        event_missing = not cleaned.get("trigger_event_name") and not self.has_error("trigger_event_name")
        if trigger == Loop.Trigger.EVENT and event_missing:
            self.add_error("trigger_event_name", "Name the event that starts this loop.")
        list_missing = not cleaned.get("trigger_list") and not self.has_error("trigger_list")
        if trigger == Loop.Trigger.LIST_ADDED and list_missing:
            self.add_error("trigger_list", "Choose the list.")
        if trigger == Loop.Trigger.CONTACT_UPDATED and cleaned.get("trigger_field"):
            field = cleaned["trigger_field"].strip()
            known = fields_for(properties=team_properties(team_id=self.instance.team_id))
            if field not in known or field == "lists":
                self.add_error("trigger_field", f"Unknown field “{field[:80]}”: e.g. contact.first_name.")
            elif not field_watchable(field):
                self.add_error("trigger_field", f"“{field}” never changes once set: watch another field.")
        if cleaned.get("frequency") == Loop.Frequency.PER_KEY:
            if trigger != Loop.Trigger.EVENT:
                self.add_error(
                    "frequency", "“Once per key” takes its key from the event: use it with “Event received”."
                )
            elif not cleaned.get("frequency_key", "").strip() and not self.has_error("frequency_key"):
                self.add_error("frequency_key", "Name the event property, e.g. invoice_id.")
        if trigger != Loop.Trigger.EVENT:
            cleaned["trigger_event_name"] = ""
        if trigger != Loop.Trigger.LIST_ADDED:
            cleaned["trigger_list"] = None
        if trigger != Loop.Trigger.CONTACT_UPDATED:
            cleaned.update(
                trigger_field="", trigger_from="", trigger_to="", trigger_from_set=False, trigger_to_set=False
            )
        if cleaned.get("frequency") != Loop.Frequency.PER_KEY:
            cleaned["frequency_key"] = ""
        return cleaned


class StepForm(forms.ModelForm):
    """The fields of one kind of step. The model's `clean` checks the step can work (an email's
    Liquid parses, a timer waits at least 1, …), so a saved step is always a usable one."""

    def __init__(self, *args, catalogue=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.catalogue = catalogue or {}
        # What the builder reads: the post, or the post given back unsaved after a builder button
        self.posted = self.data if self.is_bound else (self.initial if builder_action(self.initial) else None)

    def clean_wait_event_name(self) -> str:
        return event_name_validate(self.cleaned_data.get("wait_event_name", ""))

    ERRORS_SHOWN_ON: dict[str, str] = {}  # the model's errors on fields this form edits through another

    def _update_errors(self, errors):
        """The model's check of a field this form does not have (a filter's `conditions`, built from the rule's
        fields) is shown on the field that builds it, not raised as a server error."""
        if hasattr(errors, "error_dict"):
            for field in [name for name in errors.error_dict if name not in self.fields and name != NON_FIELD_ERRORS]:
                shown_on = self.ERRORS_SHOWN_ON.get(field, NON_FIELD_ERRORS)
                errors.error_dict.setdefault(shown_on, []).extend(errors.error_dict.pop(field))
            for field in [name for name in errors.error_dict if name != NON_FIELD_ERRORS and self.has_error(name)]:
                del errors.error_dict[field]  # the form's own message on it ("This field is required.") is enough
            if not errors.error_dict:
                return
        super()._update_errors(errors)


STEP_FIELDS = {
    LoopStep.Kind.EMAIL: ["subject", "preview_text", "body", "from_name", "from_email", "reply_to", "tracking"],
    LoopStep.Kind.TIMER: ["delay_value", "delay_unit"],
    LoopStep.Kind.FILTER: [],
    LoopStep.Kind.WAIT_EVENT: ["wait_event_name", "delay_value", "delay_unit", "on_event", "on_timeout"],
    LoopStep.Kind.BRANCH: [],
    LoopStep.Kind.EXPERIMENT: [],
    LoopStep.Kind.UPDATE_CONTACT: ["update_action", "update_property", "update_value", "update_list"],
}

TRACKING_HELP = (
    "A pixel counts opens and the links go through this site to count clicks. Off: neither, for this email. "
    "The whole team's switch is in Settings → Sending."
)

STEP_LABELS = {
    LoopStep.Kind.EMAIL: {
        "preview_text": "Preview text",
        "from_name": "From name",
        "from_email": "From email",
        "reply_to": "Reply-to",
        "tracking": "Track opens and clicks",
    },
    LoopStep.Kind.TIMER: {"delay_value": "Wait", "delay_unit": "Unit"},
    LoopStep.Kind.WAIT_EVENT: {
        "wait_event_name": "Event to wait for",
        "delay_value": "Wait at most",
        "delay_unit": "Unit",
        "on_event": "If it arrives",
        "on_timeout": "If it does not",
    },
    LoopStep.Kind.UPDATE_CONTACT: {
        "update_action": "Change",
        "update_property": "Property",
        "update_value": "Value",
        "update_list": "Mailing list",
    },
}

STEP_HELP = {
    LoopStep.Kind.EMAIL: {
        "subject": "Liquid works here too: {{ contact.first_name }}, {{ event.amount_formatted }}.",
        "body": "Markdown with Liquid. A button: [Pay now]({{ event.hosted_invoice_url }}){.button}. "
        "An unsubscribe link is added to every email.",
        "from_email": "Blank: the site's default sender. Otherwise an address on a domain verified in "
        "Settings → Sending (or allowed by this installation).",
        "tracking": TRACKING_HELP,
    },
    LoopStep.Kind.UPDATE_CONTACT: {"update_value": "For “Set a property”: typed as the property is declared."},
}


def step_form_class(kind: str) -> type[StepForm]:
    kind = LoopStep.Kind(kind)
    widgets = {
        "body": forms.Textarea(attrs={"rows": 14, "spellcheck": "true", "class": "code"}),
        "wait_event_name": EVENT_NAME_WIDGET,
        "delay_value": forms.NumberInput(attrs={"min": 1}),
    }
    meta = type(
        "Meta",
        (),
        {
            "model": LoopStep,
            "fields": STEP_FIELDS[kind],
            "labels": STEP_LABELS.get(kind, {}),
            "help_texts": STEP_HELP.get(kind, {}),
            "widgets": {name: widget for name, widget in widgets.items() if name in STEP_FIELDS[kind]},
        },
    )
    bases: tuple[type, ...] = (StepForm,)
    if kind == LoopStep.Kind.FILTER:
        bases = (FilterStepForm,)
    elif kind in {LoopStep.Kind.BRANCH, LoopStep.Kind.EXPERIMENT}:
        bases = (PathsStepForm,)
    elif kind == LoopStep.Kind.UPDATE_CONTACT:
        bases = (UpdateContactStepForm,)
    return type(f"{kind.name.title().replace('_', '')}StepForm", bases, {"Meta": meta})


class FilterStepForm(StepForm):
    """The filter builder (contacts.builder): rules and groups of rules over known fields. A row left without a
    field is left out."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.builder = ConditionsBuilder("c", self.catalogue, data=self.posted, tree=self.instance.conditions)

    def clean(self):
        cleaned = super().clean()
        tree = self.builder.tree()
        if tree is None:
            self.add_error(None, self.builder.error or "Nothing was saved: fix the marked rules.")
        else:
            self.instance.conditions = tree
        return cleaned

    def _post_clean(self):
        if not self.errors:  # a refused row says why; "needs at least one rule" on top of it would not
            super()._post_clean()


@dataclass
class PathRow:
    """One path of a branch (its name and filter builder) or variant of an experiment (its name, percent and
    whether it is the control), as the form shows it."""

    port: int
    name: str = ""
    builder: ConditionsBuilder | None = None
    percent: str = ""
    control: bool = False
    steps: int = 0  # steps hanging from it
    removable: bool = False
    error: str = ""

    @property
    def number(self) -> int:
        return self.port + 1


NEW_PATHS = {
    LoopStep.Kind.BRANCH: [{"name": "Path 1", "conditions": None}, {"name": "Everyone else", "conditions": None}],
    LoopStep.Kind.EXPERIMENT: [{"name": "A", "percent": 50, "control": True}, {"name": "B", "percent": 50}],
}


class PathsStepForm(StepForm):
    """A branch's paths (each a name and a filter) or an experiment's variants (a name, a percent, the control).
    The steps under a path hang from its place in the list, so paths are added at the end, and only the last
    one, with no steps under it, can be removed (`builder=add_path:`, `builder=remove_path:N`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.branch = self.instance.kind == LoopStep.Kind.BRANCH
        self.used = used = (
            dict(
                LoopStep.objects.filter(parent=self.instance)
                .values("port")
                .annotate(n=Count("id"))
                .values_list("port", "n")
            )
            if self.instance.pk
            else {}
        )
        self.paths = self._read(self.posted) if self.posted is not None else self._saved()
        action = builder_action(self.posted or {})
        if action == ("add_path", "") and len(self.paths) < LoopStep.MAX_PATHS:
            self._path_add()
        elif action and action[0] == "remove_path" and len(self.paths) > 2:
            last = self.paths[-1].port
            if action[1] == str(last) and not used.get(last):
                self.paths.pop()
        for row in self.paths:
            row.steps = used.get(row.port, 0)
        if len(self.paths) > 2 and not self.paths[-1].steps:
            self.paths[-1].removable = True

    def _path_add(self) -> None:
        """A new path at the end; for a branch whose last path is the catch-all (no rules, no steps under it yet),
        just before it, so that the catch-all stays last."""
        port = len(self.paths)
        new = self._row(port, {"name": f"{self.noun} {port + 1}", "percent": 0})
        last = self.paths[-1] if self.paths else None
        catch_all = last is not None and last.builder is not None and last.builder.empty
        if self.branch and catch_all and last is not None and not self.used.get(last.port):
            assert last.builder is not None and new.builder is not None
            new.name, last.name = last.name, f"{self.noun} {last.port + 1}"
            new.builder, last.builder = last.builder, new.builder
            new.builder.rename(f"path-{new.port}-c", f"Path {new.port + 1}")
            last.builder.rename(f"path-{last.port}-c", f"Path {last.port + 1}")
        self.paths.append(new)

    @property
    def can_add(self) -> bool:
        return len(self.paths) < LoopStep.MAX_PATHS

    @property
    def noun(self) -> str:
        return "Path" if self.branch else "Variant"

    def _row(self, port: int, path: dict) -> PathRow:
        row = PathRow(port, name=str(path.get("name", "")))
        if self.branch:
            row.builder = ConditionsBuilder(
                f"path-{port}-c", self.catalogue, tree=path.get("conditions"), title=f"Path {port + 1}"
            )
        else:
            row.percent, row.control = str(path.get("percent", "")), bool(path.get("control"))
        return row

    def _saved(self) -> list[PathRow]:
        paths = self.instance.paths or NEW_PATHS[LoopStep.Kind(self.instance.kind)]
        return [self._row(port, path) for port, path in enumerate(paths[: LoopStep.MAX_PATHS])]

    def _read(self, data) -> list[PathRow]:
        rows = []
        for port in range(LoopStep.MAX_PATHS):
            if f"path-{port}-name" not in data:
                break
            row = PathRow(port, name=str(data.get(f"path-{port}-name", ""))[:200])
            if self.branch:
                row.builder = ConditionsBuilder(f"path-{port}-c", self.catalogue, data=data, title=f"Path {port + 1}")
            else:
                row.percent = str(data.get(f"path-{port}-percent", "")).strip()[:10]
                row.control = data.get("control") == str(port)
            rows.append(row)
        return rows

    def clean(self):
        cleaned = super().clean()
        paths = []
        for row in self.paths:
            name = row.name.strip()[:80]
            if "\x00" in name:  # PostgreSQL's JSON refuses it
                self.add_error(None, f"{self.noun} {row.number}: a name cannot hold a NUL character.")
            if self.branch:
                assert row.builder is not None
                tree = row.builder.tree()
                if tree is None:
                    self.add_error(None, f"Path {row.number}: {row.builder.error or 'fix the marked rules.'}")
                paths.append({"name": name, "conditions": tree})
            else:
                percent = int(row.percent) if DIGITS.fullmatch(row.percent) and len(row.percent) <= 3 else None
                if percent is None:
                    row.error = "A whole percent from 0 to 100."
                    self.add_error(None, f"Variant {row.number}: give it a whole percent from 0 to 100.")
                paths.append({"name": name, "percent": percent, "control": row.control})
        lost = sorted(port + 1 for port, steps in self.used.items() if steps and port >= len(self.paths))
        if lost:  # paths left out of the post itself (the remove button is not offered for them)
            self.add_error(None, f"Path {lost[0]} has steps under it: remove them before removing the path.")
        self.instance.paths = paths
        return cleaned

    def _post_clean(self):
        if not self.errors:
            super()._post_clean()


class UpdateContactStepForm(StepForm):
    def _post_clean(self):
        super()._post_clean()  # the instance has the form's values now
        for field, problem in update_step_problems(step=self.instance).items():
            if field in self.cleaned_data:
                self.add_error(field, problem)


UPDATE_ROWS = {
    "update_property": "set_property clear_property",
    "update_value": "set_property",
    "update_list": "join_list leave_list",
}


def step_form(kind: str, *args, **kwargs) -> StepForm:
    form = step_form_class(kind)(*args, **kwargs)
    if kind == LoopStep.Kind.UPDATE_CONTACT:
        team_id = form.instance.team_id
        form.fields["update_list"].queryset = MailingList.objects.filter(team_id=team_id).order_by("name")
        form.fields["update_action"].required = True
        form.fields["update_action"].error_messages["required"] = "Choose what to change."
        # The fields of the chosen change only (static/css/app.css, by :has()); the property picks a known key
        for name, actions in UPDATE_ROWS.items():
            form.fields[name].wrapper_attrs = {"data-for-action": actions}  # type: ignore[attr-defined]
        keys = [key for key, _, _ in team_properties(team_id=team_id)]
        form.fields["update_property"].widget.attrs.update(list="property-keys", autocomplete="off")
        form.property_keys = keys  # type: ignore[attr-defined]
    return form


class AddStepForm(forms.Form):
    kind = forms.ChoiceField(choices=LoopStep.Kind.choices, label="Add a step")


class TransactionalForm(forms.ModelForm):
    required_variables = forms.CharField(
        required=False,
        max_length=500,
        label="Required data variables",
        help_text="Comma-separated names every send must supply in dataVariables, e.g. name, reset_url.",
    )

    class Meta:
        model = TransactionalEmail
        fields = ["name", "subject", "preview_text", "body", "from_name", "from_email", "reply_to", "tracking"]
        labels = {
            "preview_text": "Preview text",
            "from_name": "From name",
            "from_email": "From email",
            "tracking": "Track opens and clicks",
        }
        help_texts = {
            "subject": "Liquid: {{ data.name }} for a data variable, {{ contact.first_name }} for a contact.",
            "body": "Markdown with Liquid, e.g. [Reset your password]({{ data.reset_url }}){.button}. "
            "Transactional emails have no unsubscribe link and reach unsubscribed contacts too.",
            "from_email": "Blank: the site's default sender. Otherwise an address on a domain verified in "
            "Settings → Sending (or allowed by this installation).",
            "tracking": TRACKING_HELP,
        }
        widgets = {"body": forms.Textarea(attrs={"rows": 12, "class": "code"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial["required_variables"] = ", ".join(self.instance.required_variables or [])

    def clean_required_variables(self) -> list[str]:
        names = [name.strip() for name in self.cleaned_data["required_variables"].split(",") if name.strip()]
        bad = [name for name in names if not VARIABLE_NAME.fullmatch(name)]
        if bad:
            raise forms.ValidationError(f"Not a variable name: {bad[0]}. Use letters, digits and _.")
        return list(dict.fromkeys(names))

    def save(self, commit=True):
        self.instance.required_variables = self.cleaned_data["required_variables"]
        return super().save(commit=commit)
