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
