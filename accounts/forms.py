from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm


class SignupForm(UserCreationForm):
    email = forms.EmailField(help_text="For password resets and invitations.")
    team_name = forms.CharField(max_length=120, label="Team name", help_text="Your company or project.")

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ["username", "email"]

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if get_user_model().objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email exists already. Log in instead.")
        return email


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email of the person to invite")
