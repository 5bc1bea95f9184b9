import json

from django import forms

from .models import Contact, MailingList


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
        taken = Contact.objects.filter(team=self.team).with_email(email).exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError("A contact with this email is already in your audience.")
        return email

    def clean_user_id(self):
        user_id = self.cleaned_data["user_id"].strip()
        if user_id and Contact.objects.filter(team=self.team, user_id=user_id).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("Another contact has this user id.")
        return user_id

    def clean_properties(self):
        raw = self.cleaned_data["properties"].strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError('Properties are an object: {"name": value, …}.')
        return value
