from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0005_schedules"),
    ]

    operations = [
        migrations.AddField(
            model_name="logtail",
            name="matches",
            field=models.JSONField(blank=True, default=None, null=True),
        ),
    ]
