from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.core.exceptions import ValidationError

from .models import Membership
from .services.senders import domain_normalize


def _email_taken(email: str) -> bool:
    return get_user_model().objects.filter(email__iexact=email.strip()).exists()


class SignupForm(UserCreationForm):
    email = forms.EmailField(help_text="For password resets and invitations.")
    team_name = forms.CharField(max_length=120, label="Team name", help_text="Your company or project.")

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ["username", "email"]

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if _email_taken(email):
            raise forms.ValidationError("An account with this email exists already. Log in instead.")
        return email


class InvitationSignupForm(UserCreationForm):
    """Sign-up from an invitation link: the email is the invitation's (shown, not editable: a
    disabled field ignores what is posted), and there is no team to name."""

    email = forms.EmailField(disabled=True, required=False, help_text="The address this invitation was sent to.")

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ["username", "email"]

    def __init__(self, *args, invitation, **kwargs):
        self.invitation = invitation
        super().__init__(*args, initial={"email": invitation.email}, **kwargs)

    def clean_email(self):
        if _email_taken(self.invitation.email):
            raise forms.ValidationError(
                f"An account with {self.invitation.email} exists already: log in with it to accept."
            )
        return self.invitation.email


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email of the person to invite")
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER, required=False)

    def __init__(self, *args, roles: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        # Only the roles this inviter may give (an admin cannot invite an owner), from the least power up.
        rank = [Membership.Role.MEMBER, Membership.Role.ADMIN, Membership.Role.OWNER]
        self.fields["role"].choices = sorted(roles, key=lambda choice: rank.index(choice[0]))
        self.fields["role"].help_text = "Admins change settings and invite; owners also manage roles."

    def clean_role(self) -> str:
        return self.cleaned_data.get("role") or Membership.Role.MEMBER  # not given: a plain member


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


class SenderDomainForm(forms.Form):
    domain = forms.CharField(
        max_length=253,
        label="Domain",
        help_text="The part after the @ of the From you want, e.g. example.com. Each subdomain is verified on "
        "its own (mail.example.com is not covered by example.com).",
        widget=forms.TextInput(attrs={"placeholder": "example.com", "autocomplete": "off", "spellcheck": "false"}),
    )

    def clean_domain(self) -> str:
        try:
            return domain_normalize(self.cleaned_data["domain"])
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from exc


class TeamForm(forms.Form):
    name = forms.CharField(max_length=120, label="Team name", help_text="Your company or project.")
