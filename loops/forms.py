"""The loop editor's forms: a loop's name and trigger, and one form per kind of step."""

import re

from django import forms

from .models import Loop, LoopStep, TransactionalEmail
from .services import event_name_validate

VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
EVENT_NAME_WIDGET = forms.TextInput(
    attrs={"list": "event-names", "autocomplete": "off", "spellcheck": "false", "placeholder": "e.g. failedPayment"}
)


class LoopForm(forms.ModelForm):
    class Meta:
        model = Loop
        fields = ["name", "trigger", "trigger_event_name"]
        labels = {"trigger": "Trigger", "trigger_event_name": "Event name"}
        help_texts = {
            "trigger_event_name": "For “Event received”: the event that starts this loop. Pick one your Stripe "
            "endpoints fire or type a new name.",
        }
        widgets = {"trigger_event_name": EVENT_NAME_WIDGET}

    def clean_trigger_event_name(self) -> str:
        return event_name_validate(self.cleaned_data.get("trigger_event_name", ""))

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("trigger") == Loop.Trigger.EVENT and not cleaned.get("trigger_event_name"):
            self.add_error("trigger_event_name", "Name the event that starts this loop.")
        if cleaned.get("trigger") == Loop.Trigger.CONTACT_ADDED:
            cleaned["trigger_event_name"] = ""
        return cleaned


class StepForm(forms.ModelForm):
    """The fields of one kind of step. The model's `clean` checks the step can work (an email's
    Liquid parses, a timer waits at least 1, …), so a saved step is always a usable one."""

    def clean_wait_event_name(self) -> str:
        return event_name_validate(self.cleaned_data.get("wait_event_name", ""))


STEP_FIELDS = {
    LoopStep.Kind.EMAIL: ["subject", "preview_text", "body", "from_name", "from_email", "reply_to"],
    LoopStep.Kind.TIMER: ["delay_value", "delay_unit"],
    LoopStep.Kind.FILTER: ["filter_field", "filter_operator", "filter_value"],
    LoopStep.Kind.WAIT_EVENT: ["wait_event_name", "delay_value", "delay_unit", "on_event", "on_timeout"],
}

STEP_LABELS = {
    LoopStep.Kind.EMAIL: {
        "preview_text": "Preview text",
        "from_name": "From name",
        "from_email": "From email",
        "reply_to": "Reply-to",
    },
    LoopStep.Kind.TIMER: {"delay_value": "Wait", "delay_unit": "Unit"},
    LoopStep.Kind.FILTER: {"filter_field": "Contact field", "filter_operator": "Condition", "filter_value": "Value"},
    LoopStep.Kind.WAIT_EVENT: {
        "wait_event_name": "Event to wait for",
        "delay_value": "Wait at most",
        "delay_unit": "Unit",
        "on_event": "If it arrives",
        "on_timeout": "If it does not",
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
    LoopStep.Kind.FILTER: {"filter_field": "email, first_name, source, user_group, … or properties.plan"},
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
    return type(f"{kind.name.title().replace('_', '')}StepForm", (StepForm,), {"Meta": meta})


def step_form(kind: str, *args, **kwargs) -> StepForm:
    form = step_form_class(kind)(*args, **kwargs)
    if kind == LoopStep.Kind.FILTER:
        form.fields["filter_operator"].required = True
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
