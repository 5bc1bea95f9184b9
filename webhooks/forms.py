from django import forms

from . import services
from .models import Endpoint, EventSetting
from .stripe_events import StripeEventType


class EndpointForm(forms.Form):
    name = forms.CharField(
        max_length=120,
        initial="Stripe",
        help_text="For you, to tell endpoints apart: e.g. the Stripe account it belongs to.",
    )
    mode = forms.ChoiceField(
        choices=Endpoint.Mode.choices,
        initial=Endpoint.Mode.LIVE,
        widget=forms.RadioSelect,
        required=False,  # a script that posts no mode gets a live endpoint, like the command's default
        label="Stripe mode",
        help_text="Which of Stripe's modes this endpoint is for; it cannot be changed later. A live endpoint "
        "ignores test-mode events. A test endpoint syncs test contacts, kept apart from live ones, and their "
        "loops email only your team's members.",
    )

    def clean_mode(self) -> str:
        return self.cleaned_data["mode"] or Endpoint.Mode.LIVE


class SecretForm(forms.Form):
    # A password field never renders a value, so neither the saved secret nor a refused one is echoed.
    secret = forms.CharField(
        label="Signing secret",
        max_length=255,
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "spellcheck": "false", "placeholder": "whsec_…"}),
    )

    def clean_secret(self) -> str:
        return services.secret_validate(self.cleaned_data["secret"])


def _key(event_type: str) -> str:
    return event_type.replace(".", "_")


class EventSettingsForm(forms.Form):
    """One checkbox and one trigger name per supported Stripe type, saved together."""

    def __init__(self, *args, type_settings: list[tuple[StripeEventType, EventSetting | None]], **kwargs):
        super().__init__(*args, **kwargs)
        self.specs = [spec for spec, _ in type_settings]
        for spec, setting in type_settings:
            key = _key(spec.type)
            self.fields[f"{key}_enabled"] = forms.BooleanField(
                required=False, initial=setting.enabled if setting else True, label="Accept these events"
            )
            self.fields[f"{key}_trigger"] = forms.CharField(
                required=False,
                max_length=120,
                initial=setting.trigger_event_name if setting else "",
                label="Trigger an event",
                validators=[services.trigger_name_validate],
                widget=forms.TextInput(
                    attrs={
                        "list": "trigger-names",
                        "autocomplete": "off",
                        "placeholder": "none: sync only",
                    }
                ),
            )

    def rows(self):
        """(type, its checkbox, its trigger field) for the template, in the one list's order."""
        for spec in self.specs:
            key = _key(spec.type)
            yield spec, self[f"{key}_enabled"], self[f"{key}_trigger"]

    def cleaned_settings(self) -> dict[str, tuple[bool, str]]:
        return {
            spec.type: (
                self.cleaned_data[f"{_key(spec.type)}_enabled"],
                self.cleaned_data[f"{_key(spec.type)}_trigger"].strip(),
            )
            for spec in self.specs
        }
