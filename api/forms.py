import secrets

from django import forms

from .models import ApiKey

NAME_MAX_LENGTH = ApiKey._meta.get_field("name").max_length


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        label="Key name",
        max_length=NAME_MAX_LENGTH,
        widget=forms.TextInput(attrs={"placeholder": "e.g. Production backend", "autocomplete": "off"}),
        help_text="For you, to tell keys apart: where the key will be used.",
    )
    # One per rendered form: a reload of the page that shows a new key posts it again, and gets no second key.
    request_id = forms.CharField(widget=forms.HiddenInput, max_length=32, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial["request_id"] = secrets.token_hex(16)
