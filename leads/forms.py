"""Forms of the sales pages: the funnel's range and filters, the board's filters, a move, a note.

Each filter form reads the query string (GET), so a filtered page's URL is shareable.
"""

from datetime import timedelta

from django import forms
from django.utils import timezone

from eidolons.choices import PipelineStage

from .choices import LEAD_OPEN_STATUSES, LeadSourceChoices, LeadStatusChoices

DEFAULT_RANGE_DAYS = 90
MAX_RANGE_DAYS = 3 * 366


def _owner_choices(owners) -> list[tuple[str, str]]:
    return [("", "any owner"), *((e.slug, f"{e.name} ({e.stage})") for e in owners)]


class FunnelFilterForm(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    source = forms.ChoiceField(required=False, choices=[("", "any source"), *LeadSourceChoices.choices])
    owner = forms.ChoiceField(required=False)

    def __init__(self, data, *, owners):
        super().__init__(data)
        self.fields["owner"].choices = _owner_choices(owners)

    @staticmethod
    def default_range() -> dict:
        """The last DEFAULT_RANGE_DAYS UTC days, today included."""
        end = timezone.now().date()
        return {"start": end - timedelta(days=DEFAULT_RANGE_DAYS - 1), "end": end}

    def clean(self):
        data = super().clean()
        defaults = self.default_range()
        end = data.get("end") or defaults["end"]
        start = data.get("start") or end - timedelta(days=DEFAULT_RANGE_DAYS - 1)
        if start > end:
            raise forms.ValidationError("The start date is after the end date: swap them.")
        if (end - start).days >= MAX_RANGE_DAYS:
            raise forms.ValidationError(f"Choose a range of at most {MAX_RANGE_DAYS} days.")
        data["start"], data["end"] = start, end
        return data


class BoardFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search",
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": "company, contact or email"}))
    stage = forms.ChoiceField(required=False, choices=[("", "all stages"), *PipelineStage.choices])
    status = forms.ChoiceField(required=False, choices=[("", "any open status"), *(
        (s.value, s.label) for s in LeadStatusChoices if s in LEAD_OPEN_STATUSES)])
    owner = forms.ChoiceField(required=False)
    source = forms.ChoiceField(required=False, choices=[("", "any source"), *LeadSourceChoices.choices])
    stale = forms.BooleanField(required=False, label="Stale only")

    def __init__(self, data, *, owners):
        super().__init__(data)
        self.fields["owner"].choices = _owner_choices(owners)
