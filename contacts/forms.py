import json

from django import forms
from django.db.models.functions import Lower

from .models import Contact


class ContactForm(forms.ModelForm):
    properties = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text='Custom properties as JSON, e.g. {"plan": "pro"}.',
    )

    class Meta:
        model = Contact
        fields = ["email", "first_name", "last_name", "user_group", "user_id", "subscribed"]

    def __init__(self, *args, team, **kwargs):
        super().__init__(*args, **kwargs)
        self.team = team
        if self.instance.pk and not self.is_bound:
            self.initial["properties"] = (
                json.dumps(self.instance.properties or {}, indent=2) if self.instance.properties else ""
            )

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        taken = (
            Contact.objects.annotate(email_lower=Lower("email"))
            .filter(team=self.team, email_lower=email.lower())
            .exclude(pk=self.instance.pk)
        )
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
