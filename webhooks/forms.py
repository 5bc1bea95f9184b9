from django import forms

from contacts.models import MailingList

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


def _event_name_field(label: str, initial: str, *, placeholder: str) -> forms.CharField:
    """An event a Stripe type fires: blank, or a name (the team's names and the suggestions offered)."""
    return forms.CharField(
        required=False,
        max_length=120,
        initial=initial,
        label=label,
        validators=[services.trigger_name_validate],
        widget=forms.TextInput(attrs={"list": "trigger-names", "autocomplete": "off", "placeholder": placeholder}),
    )


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
            self.fields[f"{key}_trigger"] = _event_name_field(
                "Trigger an event", setting.trigger_event_name if setting else "", placeholder="sync only"
            )
            self.fields[f"{key}_additional"] = _event_name_field(
                "Trigger an additional custom event",
                setting.additional_event_name if setting else "",
                placeholder="none",
            )

    def rows(self):
        """(type, its checkbox, its trigger field, its additional event field) for the template, in the one
        list's order."""
        for spec in self.specs:
            key = _key(spec.type)
            yield spec, self[f"{key}_enabled"], self[f"{key}_trigger"], self[f"{key}_additional"]

    def clean(self):
        cleaned = super().clean()
        for spec in self.specs:
            key = _key(spec.type)
            trigger, additional = cleaned.get(f"{key}_trigger", ""), cleaned.get(f"{key}_additional", "")
            if additional and additional == trigger:
                self.add_error(f"{key}_additional", "The additional event must differ from the first one.")
        return cleaned

    def cleaned_settings(self) -> dict[str, tuple[bool, str, str]]:
        return {
            spec.type: (
                self.cleaned_data[f"{_key(spec.type)}_enabled"],
                self.cleaned_data[f"{_key(spec.type)}_trigger"].strip(),
                self.cleaned_data[f"{_key(spec.type)}_additional"].strip(),
            )
            for spec in self.specs
        }


class EndpointOptionsForm(forms.ModelForm):
    """Loops' endpoint options: what a new contact gets, and what a customer deleted in Stripe means."""

    class Meta:
        model = Endpoint
        fields = ["new_contact_user_group", "new_contact_list", "customer_deleted"]
        widgets = {"customer_deleted": forms.RadioSelect}
        help_texts = {
            "new_contact_list": "Contacts this endpoint creates join it. Existing contacts keep their lists.",
            "customer_deleted": "Deleting also removes the contact's events and emails from LoopSync.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        lists = MailingList.objects.filter(team_id=self.instance.team_id)  # the team's own lists only
        self.fields["new_contact_list"].queryset = lists
        self.fields["new_contact_list"].empty_label = "No list"

    def clean_new_contact_user_group(self) -> str:
        return self.cleaned_data["new_contact_user_group"].strip()


class ApiKeyForm(forms.Form):
    # A password field never renders a value, so neither the saved key nor a refused one is echoed.
    api_key = forms.CharField(
        label="Restricted key",
        max_length=255,
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "spellcheck": "false", "placeholder": "rk_live_…"}),
    )


class ImportForm(forms.Form):
    fire_events = forms.BooleanField(
        required=False,
        label="Also fire events",
        help_text="Fire the events set above for customer.created and customer.subscription.created, so that "
        "imported customers start those loops. Off: contacts and billing state only.",
    )


class CatchupForm(forms.Form):
    since = forms.DateTimeField(
        required=False,
        label="Events since (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Blank: since the newest event this endpoint received. Stripe keeps 30 days of events.",
    )

    def __init__(self, *args, default_since=None, **kwargs):
        super().__init__(*args, **kwargs)
        if default_since is not None:  # a selectors.CatchupStart
            when = f"{default_since.at:%b %-d, %Y %H:%M} UTC"
            self.fields["since"].help_text = (
                f"Blank: since {when}, {default_since.why}. After a wrong signing secret or an outage, give the "
                "time it began. Stripe keeps 30 days of events."
            )
