from django.db import migrations, models
from django.db.models import F


def reports_before_are_done(apps, schema_editor):
    # Reports stored before diagnoses were tracked are not owed one: only new reports are swept.
    Report = apps.get_model("dashboard", "Report")
    Report.objects.filter(diagnosed_at__isnull=True).update(diagnosed_at=F("received_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0006_logtail_matches"),
    ]

    operations = [
        migrations.AddField(
            model_name="node",
            name="agent_instance",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AddField(
            model_name="node",
            name="duplicate_reports",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="report",
            name="agent_instance",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AddField(
            model_name="report",
            name="diagnosed_at",
            field=models.DateTimeField(blank=True, db_index=True, null=True),
        ),
        migrations.AddField(
            model_name="report",
            name="queued_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="diagnosisrun",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="bundle",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="bundle",
            name="attempts",
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.RunPython(reports_before_are_done, migrations.RunPython.noop),
    ]
