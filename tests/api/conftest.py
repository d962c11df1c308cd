"""Fixtures for the REST tests: a client per role, and helpers to count what is stored."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from labeling import services
from labeling.models import Annotation, GoldLabel, Item, ProjectMembership, Role, SourceBatch
from provenance.models import Event

ROLES = ("anonymous", "non_member", "viewer", "labeler", "sme", "manager", "superuser")


class SecureAPIClient(APIClient):
    """Requests over https, as production serves them (SECURE_SSL_REDIRECT is on)."""

    def generic(self, method, path, data="", content_type="application/octet-stream", **extra):
        extra["secure"] = True
        return super().generic(method, path, data, content_type, **extra)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Many accounts per test: a fast hasher keeps the suite quick (tests only)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def api():
    """An APIClient; ``api.as_user(user)`` authenticates it (None: anonymous)."""
    client = SecureAPIClient()

    def as_user(user):
        client.force_authenticate(user=user)
        return client

    client.as_user = as_user
    return client


@pytest.fixture
def role_users(project, manager, make_user, django_user_model):
    """One user per role in ``project`` (the fixture's manager is its manager)."""
    users = {"anonymous": None, "manager": manager}
    users["non_member"] = make_user("outsider")
    for role in (Role.VIEWER, Role.LABELER, Role.SME):
        user = make_user(f"a_{role}")
        services.set_membership(project=project, user=user, role=role)
        users[str(role)] = user
    users["superuser"] = django_user_model.objects.create_superuser(
        username="root", password="pw-for-tests-123", email="root@example.org"
    )
    return users


@pytest.fixture
def db_counts():
    """A snapshot function of the rows an import could write."""

    def snapshot() -> dict:
        from django.contrib.auth import get_user_model

        return {
            "items": Item.objects.count(),
            "annotations": Annotation.objects.count(),
            "batches": SourceBatch.objects.count(),
            "events": Event.objects.count(),
            "gold": GoldLabel.objects.count(),
            "users": get_user_model().objects.count(),
            "memberships": ProjectMembership.objects.count(),
        }

    return snapshot


@pytest.fixture
def manager_api(api, manager):
    return api.as_user(manager)
