"""One StageSetting per stage with the sales team's starting values (edit them in the admin).

Stale after: a first answer is due within a day or two; scoping, mockups and onboarding take
about a working week; a closing round two weeks of delivery. Win probability rises with each stage
(a lead that reached Onboarding has signed, short of the project being delivered).
"""

from django.db import migrations

DEFAULTS = {
    "LeadGen": (24, 5),
    "FirstResponder": (48, 10),
    "Scoping": (120, 20),
    "Orchestra": (120, 35),
    "Closer": (168, 50),
    "Onboarding": (120, 80),
    "DeliveryPM": (336, 90),
}


def create(apps, schema_editor):
    StageSetting = apps.get_model("leads", "StageSetting")
    for stage, (hours, probability) in DEFAULTS.items():
        StageSetting.objects.get_or_create(
            stage=stage, defaults={"stale_after_hours": hours, "win_probability": probability}
        )


class Migration(migrations.Migration):
    dependencies = [("leads", "0002_lead_value_stage_settings_notes")]
    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
