"""Every model registered in the admin lists for a superuser; records that change only
through services (``provenance.admin.ReadOnlyAdmin``) offer no add, change or delete."""

import pytest
from django.contrib import admin
from django.urls import reverse

from provenance.admin import ReadOnlyAdmin

pytestmark = pytest.mark.django_db


def test_every_admin_changelist_renders_and_read_only_ones_refuse_writes(client, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw-not-used")
    client.force_login(root)
    read_only = set()
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        listing = client.get(
            reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"), secure=True
        )
        assert listing.status_code == 200, meta.label
        if isinstance(model_admin, ReadOnlyAdmin):
            read_only.add(meta.label)
            add = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_add"), secure=True)
            assert add.status_code == 403, meta.label
    assert read_only == {
        "consistency.TranscriptRuleSet",
        "datasets.DatasetVersion",
        "datasets.PipelineToken",
        "labeling.Annotation",
        "labeling.GoldLabel",
        "labeling.Guideline",
        "provenance.Event",
        "review.Resolution",
    }
