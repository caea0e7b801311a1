from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0007_delivery")]

    operations = [
        migrations.RemoveField(model_name="node", name="version"),
        migrations.AddField(
            model_name="node",
            name="facts_digest",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
    ]
