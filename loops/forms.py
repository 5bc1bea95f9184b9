"""The loop editor's forms: a loop's name and trigger, and one form per kind of step."""

import re

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.forms.fields import InvalidJSONInput

from contacts.conditions import OPERATORS_ANY, conditions_clean, fields_for
from contacts.models import MailingList
from loopsync import jsonsafe

from .models import Loop, LoopStep, TransactionalEmail
from .selectors import team_properties
from .services import event_name_validate, loop_name_taken
from .services.updating import update_step_problems

VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
EVENT_NAME_WIDGET = forms.TextInput(
    attrs={"list": "event-names", "autocomplete": "off", "spellcheck": "false", "placeholder": "e.g. failedPayment"}
)


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
        if "frequency" not in self.data:  # a form that leaves the frequency out keeps it
            cleaned["frequency"] = self.instance.frequency or Loop.Frequency.EVERY
            cleaned["frequency_key"] = self.instance.frequency_key
        if trigger == Loop.Trigger.CONTACT_ADDED:
            cleaned["frequency"] = Loop.Frequency.ONCE  # a contact is added once
        if trigger == Loop.Trigger.EVENT and not cleaned.get("trigger_event_name"):
            self.add_error("trigger_event_name", "Name the event that starts this loop.")
        if trigger == Loop.Trigger.LIST_ADDED and not cleaned.get("trigger_list"):
            self.add_error("trigger_list", "Choose the list.")
        if trigger == Loop.Trigger.CONTACT_UPDATED and cleaned.get("trigger_field"):
            field = cleaned["trigger_field"].strip()
            known = fields_for(properties=team_properties(team_id=self.instance.team_id))
            if field not in known or field == "lists":
                self.add_error("trigger_field", f"Unknown field “{field[:80]}”: e.g. contact.first_name.")
        if cleaned.get("frequency") == Loop.Frequency.PER_KEY:
            if trigger != Loop.Trigger.EVENT:
                self.add_error(
                    "frequency", "“Once per key” takes its key from the event: use it with “Event received”."
                )
            elif not cleaned.get("frequency_key", "").strip():
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
        super()._update_errors(errors)


STEP_FIELDS = {
    LoopStep.Kind.EMAIL: ["subject", "preview_text", "body", "from_name", "from_email", "reply_to"],
    LoopStep.Kind.TIMER: ["delay_value", "delay_unit"],
    LoopStep.Kind.FILTER: [],
    LoopStep.Kind.WAIT_EVENT: ["wait_event_name", "delay_value", "delay_unit", "on_event", "on_timeout"],
    LoopStep.Kind.BRANCH: ["paths"],
    LoopStep.Kind.EXPERIMENT: ["paths"],
    LoopStep.Kind.UPDATE_CONTACT: ["update_action", "update_property", "update_value", "update_list"],
}

STEP_LABELS = {
    LoopStep.Kind.EMAIL: {
        "preview_text": "Preview text",
        "from_name": "From name",
        "from_email": "From email",
        "reply_to": "Reply-to",
    },
    LoopStep.Kind.TIMER: {"delay_value": "Wait", "delay_unit": "Unit"},
    LoopStep.Kind.WAIT_EVENT: {
        "wait_event_name": "Event to wait for",
        "delay_value": "Wait at most",
        "delay_unit": "Unit",
        "on_event": "If it arrives",
        "on_timeout": "If it does not",
    },
    LoopStep.Kind.BRANCH: {"paths": "Paths (JSON)"},
    LoopStep.Kind.EXPERIMENT: {"paths": "Variants (JSON)"},
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
    },
    LoopStep.Kind.BRANCH: {
        "paths": 'In order, first match wins: [{"name": "Pro", "conditions": {"match": "all", "rules": '
        '[{"field": "contact.properties.planName", "op": "equals", "value": "Pro"}]}}, {"name": "Everyone '
        'else", "conditions": null}]'
    },
    LoopStep.Kind.EXPERIMENT: {
        "paths": '[{"name": "A", "percent": 50, "control": true}, {"name": "B", "percent": 50}]',
    },
    LoopStep.Kind.UPDATE_CONTACT: {"update_value": "For “Set a property”: typed as the property is declared."},
}


MAX_BUILDER_RULES = 10  # rows of the filter builder (more, and nested groups: the loop's JSON)


def rule_fields(index: int, catalogue) -> dict[str, forms.Field]:
    """One rule's row of the filter builder: a known field, a condition that fits its type, a value."""
    number = index + 1
    return {
        f"rule_{index}_field": forms.ChoiceField(
            label=f"Rule {number}: field",
            required=False,
            choices=[("", "Choose a field")] + [(name, f"{f.label} ({f.type})") for name, f in catalogue.items()],
        ),
        f"rule_{index}_op": forms.ChoiceField(
            label=f"Rule {number}: condition", required=False, choices=list(OPERATORS_ANY.items())
        ),
        f"rule_{index}_value": forms.CharField(label=f"Rule {number}: value", required=False, max_length=255),
        f"rule_{index}_value2": forms.CharField(
            label=f"Rule {number}: and", required=False, max_length=255, help_text="For “between”."
        ),
    }


class SafeJSONField(forms.JSONField):
    """JSON typed in a textarea, parsed strictly (loopsync.jsonsafe): nested too deep, a NUL… is a form error,
    not a RecursionError or a DataError (a 500)."""

    def to_python(self, value):
        if isinstance(value, str) and value not in self.empty_values:
            try:
                jsonsafe.loads(value)
            except jsonsafe.UnsafeJSON as exc:
                raise forms.ValidationError(str(exc), code="invalid") from None
        return super().to_python(value)

    def bound_data(self, data, initial):
        if isinstance(data, str) and not self.disabled:
            try:
                jsonsafe.loads(data)
            except jsonsafe.UnsafeJSON:
                return InvalidJSONInput(data)  # shown again as typed
        return super().bound_data(data, initial)


def step_form_class(kind: str) -> type[StepForm]:
    kind = LoopStep.Kind(kind)
    widgets = {
        "body": forms.Textarea(attrs={"rows": 14, "spellcheck": "true", "class": "code"}),
        "wait_event_name": EVENT_NAME_WIDGET,
        "delay_value": forms.NumberInput(attrs={"min": 1}),
        "paths": forms.Textarea(attrs={"rows": 8, "class": "code", "spellcheck": "false"}),
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
            "field_classes": {"paths": SafeJSONField} if "paths" in STEP_FIELDS[kind] else {},
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
    """The filter builder: rules over known fields, all or any of which must match. A row left without a field
    is left out; "Add a rule" (`add_rule`) gives one more row."""

    ERRORS_SHOWN_ON = {"conditions": "rule_0_field"}
    match = forms.ChoiceField(
        label="Go on when", choices=[("all", "all of these match"), ("any", "any of these match")]
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        saved = [rule for rule in (self.instance.conditions or {}).get("rules", []) if "field" in rule]
        given = self.data or self.initial  # a post, or one given back to add a row ("Add a rule")
        posted = {int(key.split("_")[1]) for key in given if key.startswith("rule_") and key.split("_")[1].isdigit()}
        rows = max(len(saved), max(posted, default=-1) + 1, 1) + (1 if given.get("add_rule") else 0)
        for index in range(min(rows, MAX_BUILDER_RULES)):
            self.fields.update(rule_fields(index, self.catalogue))
        if not self.is_bound and not posted:
            self.initial["match"] = (self.instance.conditions or {}).get("match", "all")
            for index, rule in enumerate(saved[:MAX_BUILDER_RULES]):
                self.initial.update(
                    {
                        f"rule_{index}_field": rule["field"],
                        f"rule_{index}_op": rule["op"],
                        f"rule_{index}_value": rule.get("value", ""),
                        f"rule_{index}_value2": rule.get("value2", ""),
                    }
                )

    def clean(self):
        cleaned = super().clean()
        rules, rows = [], []
        for index in range(MAX_BUILDER_RULES):
            field = cleaned.get(f"rule_{index}_field")
            if not field:
                continue
            rows.append(index)
            rules.append(
                {
                    "field": field,
                    "op": cleaned.get(f"rule_{index}_op", ""),
                    "value": cleaned.get(f"rule_{index}_value", ""),
                    "value2": cleaned.get(f"rule_{index}_value2", ""),
                }
            )
        for index, rule in zip(rows, rules, strict=True):  # each row's mistake on its own row
            try:
                conditions_clean({"match": "all", "rules": [rule]}, self.catalogue)
            except forms.ValidationError as exc:
                self.add_error(f"rule_{index}_field" if "field" in str(exc) else f"rule_{index}_value", exc)
        if not self.errors:
            self.instance.conditions = conditions_clean(
                {"match": cleaned.get("match") or "all", "rules": rules}, self.catalogue
            )
        return cleaned

    def _post_clean(self):
        if not self.errors:  # a refused row says why; "needs at least one rule" on top of it would not
            super()._post_clean()


class PathsStepForm(StepForm):
    """A branch's paths or an experiment's variants. The steps under a path hang from its place in the list, so
    a path with steps under it stays where it is: add paths at the end, remove only empty ones from the end."""

    def clean_paths(self):
        paths = self.cleaned_data.get("paths")
        if not isinstance(paths, list) or not all(isinstance(path, dict) for path in paths):
            raise forms.ValidationError("A list of paths, each an object.")
        if self.instance.pk:
            used = set(LoopStep.objects.filter(parent=self.instance).values_list("port", flat=True))
            lost = sorted(port + 1 for port in used if port >= len(paths))
            if lost:
                raise forms.ValidationError(
                    f"Path {', '.join(map(str, lost))} has steps under it: remove them before removing the path. "
                    "(Steps stay with a path's place in the list: add new paths at the end.)"
                )
        if self.instance.kind == LoopStep.Kind.BRANCH:
            cleaned = []
            for index, path in enumerate(paths):
                try:
                    conditions = conditions_clean(path.get("conditions"), self.catalogue)
                except forms.ValidationError as exc:
                    raise forms.ValidationError(f"Path {index + 1}: {' '.join(exc.messages)}") from None
                cleaned.append({"name": str(path.get("name", "")).strip()[:80], "conditions": conditions})
            return cleaned
        return [
            {
                "name": str(p.get("name", "")).strip()[:80],
                "percent": p.get("percent"),
                "control": bool(p.get("control")),
            }
            for p in paths
        ]


class UpdateContactStepForm(StepForm):
    def _post_clean(self):
        super()._post_clean()  # the instance has the form's values now
        for field, problem in update_step_problems(step=self.instance).items():
            if field in self.cleaned_data:
                self.add_error(field, problem)


def step_form(kind: str, *args, **kwargs) -> StepForm:
    form = step_form_class(kind)(*args, **kwargs)
    if kind == LoopStep.Kind.UPDATE_CONTACT:
        team_id = form.instance.team_id
        form.fields["update_list"].queryset = MailingList.objects.filter(team_id=team_id).order_by("name")
        form.fields["update_action"].required = True
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
        fields = ["name", "subject", "preview_text", "body", "from_name", "from_email", "reply_to"]
        labels = {"preview_text": "Preview text", "from_name": "From name", "from_email": "From email"}
        help_texts = {
            "subject": "Liquid: {{ data.name }} for a data variable, {{ contact.first_name }} for a contact.",
            "body": "Markdown with Liquid, e.g. [Reset your password]({{ data.reset_url }}){.button}. "
            "Transactional emails have no unsubscribe link and reach unsubscribed contacts too.",
            "from_email": "Blank: the site's default sender. Otherwise an address on a domain verified in "
            "Settings → Sending (or allowed by this installation).",
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
