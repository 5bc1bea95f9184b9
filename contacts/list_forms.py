from django import forms

from .models import MailingList
from .services.lists import NAME_TAKEN


class MailingListForm(forms.ModelForm):
    class Meta:
        model = MailingList
        fields = ["name", "description", "is_public"]
        labels = {"is_public": "Public"}
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, team, **kwargs):
        super().__init__(*args, **kwargs)
        self.team = team

    def clean_name(self):
        # The database's (team, name) constraint is exact; "Newsletter" and "newsletter" are refused here too,
        # as two lists a person cannot tell apart.
        name = self.cleaned_data["name"].strip()
        taken = MailingList.objects.filter(team=self.team, name__iexact=name).exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(NAME_TAKEN)
        return name
