"""Carry the stored Idempotency-Key answers over from eidolons (where the record lived before the
kernel existed), so a retry sent across the upgrade is still answered as before."""

from django.db import migrations


def copy_records(apps, schema_editor):
    try:
        Old = apps.get_model("eidolons", "IdempotencyRecord")
    except LookupError:
        return
    New = apps.get_model("kernel", "IdempotencyRecord")
    New.objects.bulk_create(
        [
            New(
                owner=f"token:{old.token_id}" if old.token_id else f"user:{old.user_id}",
                key=old.key, method=old.method, path=old.path, fingerprint=old.fingerprint,
                status_code=old.status_code, response=old.response, created_at=old.created_at,
            )
            for old in Old.objects.all().iterator()
        ],
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("kernel", "0001_initial"),
        ("eidolons", "0004_idempotency_response_text"),
    ]

    operations = [migrations.RunPython(copy_records, migrations.RunPython.noop)]
