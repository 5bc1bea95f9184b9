import json

from django import forms

from loopsync import jsonsafe

from .models import Contact, MailingList
from .services import EMAIL_TAKEN, property_values_validate, resubscribe_refused, resubscribe_refused_message


class _FieldsExcept:
    """A form as partials/form_fields.html reads it, less the fields a page lays out itself."""

    def __init__(self, form: forms.BaseForm, *names: str):
        self.form, self.names = form, set(names)

    def non_field_errors(self):
        return self.form.non_field_errors()

    def visible_fields(self):
        return [field for field in self.form.visible_fields() if field.name not in self.names]

    def hidden_fields(self):
        return self.form.hidden_fields()


PROPERTIES_ARE_AN_OBJECT = 'Properties are an object: {"name": value, …}.'


def properties_check(*, team, values) -> None:
    """The team's rules for custom property values, as one form error per problem ("seats: This property is a
    number.")."""
    if not isinstance(values, dict):
        raise forms.ValidationError(PROPERTIES_ARE_AN_OBJECT)
    try:
        property_values_validate(team=team, values=values)
    except forms.ValidationError as exc:
        raise forms.ValidationError(
            [f"{key}: {message}" for key, messages in exc.message_dict.items() for message in messages]
            if hasattr(exc, "error_dict")
            else exc.messages
        ) from None


class ContactForm(forms.ModelForm):
    properties = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text='Custom properties as JSON, e.g. {"plan": "pro"}.',
    )
    # Only the team's own lists are offered, and so accepted: another team's list id is "not one of the
    # available choices".
    mailing_lists = forms.ModelMultipleChoiceField(
        queryset=MailingList.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Mailing lists",
    )

    class Meta:
        model = Contact
        fields = ["email", "first_name", "last_name", "user_group", "user_id", "subscribed"]

    def __init__(self, *args, team, **kwargs):
        super().__init__(*args, **kwargs)
        self.team = team
        if self.instance.pk and resubscribe_refused(self.instance):
            # Shown, not offered: a disabled field keeps the saved value whatever is posted.
            self.fields["subscribed"].disabled = True
            self.fields["subscribed"].help_text = resubscribe_refused_message(self.instance)
        self.fields["mailing_lists"].queryset = MailingList.objects.filter(team=team)
        if self.instance.pk and not self.is_bound:
            self.initial["mailing_lists"] = list(
                self.instance.mailing_lists.filter(team=team).values_list("pk", flat=True)
            )
        if self.instance.pk and not self.is_bound:
            self.initial["properties"] = (
                json.dumps(self.instance.properties or {}, indent=2) if self.instance.properties else ""
            )

    @property
    def contact_fields(self) -> _FieldsExcept:
        """Every field but the mailing lists, which contacts/form.html shows as a fieldset of checkboxes."""
        return _FieldsExcept(self, "mailing_lists")

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        taken = (
            Contact.objects.filter(team=self.team, livemode=self.instance.livemode)
            .with_email(email)
            .exclude(pk=self.instance.pk)
        )
        if taken.exists():
            raise forms.ValidationError(EMAIL_TAKEN)
        return email

    def clean_subscribed(self) -> bool:
        subscribed = self.cleaned_data["subscribed"]
        if subscribed and self.instance.pk and resubscribe_refused(self.instance):
            raise forms.ValidationError(resubscribe_refused_message(self.instance))
        return subscribed

    def clean_user_id(self):
        user_id = self.cleaned_data["user_id"].strip()
        same_mode = Contact.objects.filter(team=self.team, livemode=self.instance.livemode, user_id=user_id)
        if user_id and same_mode.exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("Another contact has this user id.")
        return user_id

    def clean_properties(self):
        raw = self.cleaned_data["properties"].strip()
        if not raw:
            return {}
        try:
            value = jsonsafe.loads(raw, max_depth=2)
        except jsonsafe.UnsafeJSON as exc:
            raise forms.ValidationError(str(exc)) from None
        properties_check(team=self.team, values=value)
        return value


class ContactAdminForm(forms.ModelForm):
    """The admin's contact form: the app's checks of the properties and of the email, as form errors."""

    class Meta:
        model = Contact
        fields = "__all__"  # noqa: DJ007 - the admin lays out its own fields

    def clean(self):
        cleaned = super().clean()
        team = cleaned.get("team")
        if team is None:
            return cleaned
        if cleaned.get("properties"):
            try:
                properties_check(team=team, values=cleaned["properties"])
            except forms.ValidationError as exc:
                self.add_error("properties", exc)
        email = (cleaned.get("email") or "").strip()
        if email and self._taken(team, email):
            self.add_error("email", EMAIL_TAKEN)
        return cleaned

    def _taken(self, team, email: str) -> bool:
        contacts = Contact.objects.filter(team=team, livemode=self.instance.livemode).with_email(email)
        return contacts.exclude(pk=self.instance.pk).exists()
