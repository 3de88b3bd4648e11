import uuid

from django.db import migrations, models


def give_app_tokens_uuids(apps, schema_editor):
    # AddField evaluates a callable default once, so existing rows would share one uuid.
    AppToken = apps.get_model("accounts", "AppToken")
    for token in AppToken.objects.filter(uuid__isnull=True).only("pk"):
        AppToken.objects.filter(pk=token.pk).update(uuid=uuid.uuid4())


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_oauth"),
    ]

    operations = [
        migrations.AddField(
            model_name="robot",
            name="unstructured_metadata",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="apptoken",
            name="uuid",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.RunPython(give_app_tokens_uuids, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="apptoken",
            name="uuid",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
    ]
