"""The admin lists resolutions (now in the review app) and transcript rule sets, read-only."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse


@pytest.mark.django_db
def test_admin_lists_resolutions_and_rule_sets(django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.org", "pw-123")
    client = Client()
    client.force_login(root)
    for name in (
        "admin:review_resolution_changelist",
        "admin:consistency_transcriptruleset_changelist",
    ):
        assert client.get(reverse(name), secure=True).status_code == 200
    assert (
        client.get(reverse("admin:consistency_transcriptruleset_add"), secure=True).status_code
        == 403
    )
