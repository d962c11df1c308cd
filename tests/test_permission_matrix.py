"""The permission matrix: every route of ``config.urls`` × every kind of caller × an object
of the caller's project and of another project.

The expectations live in one table, ``MATRIX``, keyed by route name: for each method, who
may call it (a role set of :mod:`labeling.access`, or one of the rules below). A route
that ``get_resolver()`` finds and the table does not name fails the test, so a new route
cannot ship without deciding who may call it. What is checked is the *class* of the
answer: allowed (2xx, 3xx other than to the login page, and 400/409: the request got past
access and was judged on its content), refused (401/403, or a redirect to the login page),
hidden (404). Every request runs in a savepoint that is rolled back, so a DELETE or a
revocation does not change what the next caller sees.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse
from django.utils import timezone

from labeling import services
from labeling.access import (
    LABEL_ROLES,
    MANAGER_ROLES,
    READ_ROLES,
    REVIEW_ROLES,
    SME_ROLES,
)
from labeling.models import Role, TaskType
from tests.conftest import png_bytes

pytestmark = pytest.mark.django_db

# Routes not walked, each named: Django's admin (its own permission system) and the
# schema documents (public by design: they describe the API, not any project's data).
SKIPPED_PREFIXES = ("admin/",)
SKIPPED_NAMES = frozenset({"api-schema", "api-docs", "api-redoc"})

# --- Outcomes ----------------------------------------------------------------------------
ALLOW, DENY, HIDE = "allowed", "refused", "hidden"

# --- Callers -----------------------------------------------------------------------------
ANON, OUTSIDER, LABELER, VIEWER, SME, MANAGER, SUPERUSER = (
    "anonymous",
    "non-member",
    "labeler",
    "viewer",
    "sme",
    "manager",
    "superuser",
)
TOKEN_READ, TOKEN_WRITE, TOKEN_OTHER = "token-read", "token-write", "token-of-other-project"
CALLERS = (
    ANON,
    OUTSIDER,
    LABELER,
    VIEWER,
    SME,
    MANAGER,
    SUPERUSER,
    TOKEN_READ,
    TOKEN_WRITE,
    TOKEN_OTHER,
)
TOKENS = frozenset({TOKEN_READ, TOKEN_WRITE, TOKEN_OTHER})
OWN, OTHER = "own", "other"  # project A (the callers') and project B

# Each caller's role in project A (OWN) and project B (OTHER).
ROLES = {
    ANON: {},
    OUTSIDER: {},
    LABELER: {OWN: Role.LABELER},
    VIEWER: {OWN: Role.VIEWER},
    SME: {OWN: Role.SME},
    MANAGER: {OWN: Role.MANAGER},
    SUPERUSER: {OWN: Role.MANAGER, OTHER: Role.MANAGER},
    TOKEN_READ: {OWN: Role.VIEWER},
    TOKEN_WRITE: {OWN: Role.SME},
    TOKEN_OTHER: {OTHER: Role.VIEWER},
}
WRITE_TOKENS = frozenset({TOKEN_WRITE})


# --- Rules -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """Who may call a route + method, beyond signing in."""

    name: str
    decide: Callable[[str, str], str]  # (caller, target) -> outcome, for a signed-in caller


PUBLIC = Rule("public", lambda caller, target: ALLOW)  # even anonymous
SIGNED_IN = Rule("signed in", lambda caller, target: ALLOW)
STAFF = Rule("staff", lambda caller, target: ALLOW if caller == SUPERUSER else DENY)
ANY_MANAGER = Rule(
    "a manager of any project", lambda c, t: ALLOW if c in (MANAGER, SUPERUSER) else DENY
)


def _managed_account(caller: str, target: str) -> str:
    # A manager changes the accounts of their projects' members; others' are 404 to them.
    if caller == SUPERUSER:
        return ALLOW
    if caller == MANAGER:
        return ALLOW if target == OWN else HIDE
    return DENY


MANAGED_ACCOUNT = Rule("a manager of the account's project", _managed_account)


def roles(allowed: frozenset, *, own_assignment: bool = False) -> Rule:
    """A project-scoped rule: 404 for a non-member, 403 for a role not in ``allowed``.
    ``own_assignment``: the object is the labeler's assignment, 404 to anyone else."""

    def decide(caller: str, target: str) -> str:
        role = ROLES[caller].get(target)
        if role is None:
            return HIDE
        if role not in allowed:
            return DENY
        if own_assignment and caller != LABELER:
            return HIDE
        return ALLOW

    return Rule(", ".join(sorted(allowed)), decide)


READ, REVIEW, LABEL, SME_ONLY, MANAGER_ONLY = (
    roles(READ_ROLES),
    roles(REVIEW_ROLES),
    roles(LABEL_ROLES),
    roles(SME_ROLES),
    roles(MANAGER_ROLES),
)
ASSIGNEE = roles(LABEL_ROLES, own_assignment=True)

# --- The table: route name -> {method: rule} -----------------------------------------------
MATRIX: dict[str, dict[str, Rule]] = {
    # pages outside projects
    "home": {"GET": SIGNED_IN},
    "login": {"GET": PUBLIC, "POST": PUBLIC},
    "logout": {"POST": PUBLIC},
    "healthz": {"GET": PUBLIC},
    "favicon": {"GET": PUBLIC},
    # labeling pages
    "label": {"GET": LABEL, "POST": LABEL},
    "label-skip": {"POST": ASSIGNEE},
    "item-image": {"GET": READ},
    "item-thumbnail": {"GET": READ},
    "project-tags": {"GET": REVIEW, "POST": MANAGER_ONLY},
    # a manager's workspace (issue 12)
    "project-create": {"GET": STAFF, "POST": STAFF},
    "project-settings": {"GET": MANAGER_ONLY, "POST": MANAGER_ONLY},
    "project-import": {"GET": MANAGER_ONLY},
    "data-manager": {"GET": REVIEW},
    "project-guidelines": {"GET": MANAGER_ONLY, "POST": MANAGER_ONLY},
    "guideline-preview": {"POST": MANAGER_ONLY},
    "project-people": {"GET": MANAGER_ONLY, "POST": MANAGER_ONLY},
    "item-page": {"GET": REVIEW},
    "labeler-page": {"GET": SME_ONLY},
    # consistency pages
    "consistency-dashboard": {"GET": REVIEW},
    "consistency-start-run": {"POST": SME_ONLY},
    "model-run-page": {"GET": REVIEW},
    "consistency-monitoring": {"GET": REVIEW},
    "consistency-start-monitoring": {"POST": SME_ONLY},
    # review pages
    "review-queue": {"GET": REVIEW},
    "review-normalization": {"GET": REVIEW, "POST": REVIEW},  # publishing needs SME
    "review-flag": {"GET": REVIEW},
    "review-resolve": {"POST": SME_ONLY},
    # dataset pages
    "datasets": {"GET": REVIEW},
    "datasets-build": {"POST": SME_ONLY},
    "datasets-diff": {"GET": REVIEW},
    "dataset-lineage": {"GET": REVIEW},
    "token-create": {"POST": MANAGER_ONLY},
    "token-revoke": {"POST": MANAGER_ONLY},
    # REST: accounts and projects
    "api-token": {"POST": PUBLIC},
    "api-projects": {"GET": SIGNED_IN, "POST": STAFF},
    "api-project": {"GET": READ, "PATCH": MANAGER_ONLY},
    "api-project-classes": {"GET": READ, "POST": MANAGER_ONLY},
    "api-project-guidelines": {"GET": READ, "POST": MANAGER_ONLY},
    "api-users": {"POST": ANY_MANAGER},
    "api-user": {"PATCH": MANAGED_ACCOUNT},
    "api-project-members": {"GET": REVIEW, "POST": MANAGER_ONLY},
    "api-project-member": {"DELETE": MANAGER_ONLY},
    "api-project-items": {"GET": READ},
    "api-items-import": {"POST": MANAGER_ONLY},
    "api-items-tags": {"POST": MANAGER_ONLY},
    "api-project-item": {"GET": READ},
    "api-item": {"GET": READ},
    "api-project-annotations": {"GET": READ},
    "api-annotations-import": {"POST": MANAGER_ONLY},
    "api-progress": {"GET": READ},
    # REST: the labeling loop
    "api-next-item": {"GET": LABEL},
    "api-item-annotations": {"POST": LABEL},
    "api-assignment-skip": {"POST": ASSIGNEE},
    "api-relabel": {"POST": MANAGER_ONLY},
    # REST: ground-truth checks (never shown to labelers)
    "api-checks": {
        "GET": MANAGER_ONLY,
        "POST": MANAGER_ONLY,
        "PATCH": MANAGER_ONLY,
        "DELETE": MANAGER_ONLY,
    },
    "api-checks-resume": {"POST": MANAGER_ONLY},
    # REST: agreement and review
    "api-agreement-runs": {"GET": REVIEW, "POST": SME_ONLY},
    "api-agreement-run": {"GET": REVIEW},
    "api-agreement-run-consensus": {"GET": REVIEW},
    "api-monitoring-runs": {"GET": REVIEW, "POST": SME_ONLY},
    "api-monitoring-run": {"GET": REVIEW},
    "api-flags": {"GET": REVIEW},
    "api-flag": {"GET": REVIEW},
    "api-flag-resolve": {"POST": SME_ONLY},
    "api-normalization": {"GET": REVIEW, "POST": SME_ONLY},
    "api-normalization-preview": {"POST": REVIEW},
    "api-agreement-history": {"GET": REVIEW},
    "api-model-runs": {"GET": REVIEW, "POST": SME_ONLY},
    "api-model-run": {"GET": REVIEW},
    "api-model-run-compare": {"GET": REVIEW},
    # REST: provenance and datasets
    "api-item-history": {"GET": REVIEW},
    "api-datasets": {"GET": REVIEW, "POST": SME_ONLY},
    "api-dataset": {"GET": REVIEW},
    "api-dataset-diff": {"GET": REVIEW},
    "api-dataset-export": {"GET": REVIEW},
    "api-dataset-lineage": {"GET": REVIEW},
    "api-tokens": {"GET": MANAGER_ONLY, "POST": MANAGER_ONLY},
    "api-token-detail": {"DELETE": MANAGER_ONLY},
    # REST: the data manager (issue 12)
    "api-data-manager-items": {"GET": REVIEW},
    "api-data-manager-actions": {"POST": MANAGER_ONLY},
    "api-data-manager-export": {"GET": REVIEW},
}

# Form fields a page POST needs to get past its own lookups (``{kwarg}`` is the target's).
PAGE_BODIES = {"label": {"item": "{item_id}"}, "label-skip": {"assignment": "{assignment_id}"}}

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def expected(rule: Rule, method: str, caller: str, target: str, is_api: bool) -> str:
    """The outcome the table promises for one caller on one target."""
    if rule is PUBLIC:
        return ALLOW
    # Pages take no pipeline token: a token caller is anonymous there.
    if caller == ANON or (caller in TOKENS and not is_api):
        return DENY
    if caller in TOKENS and method not in SAFE_METHODS and caller not in WRITE_TOKENS:
        return DENY  # a read-only token is refused before any lookup
    return rule.decide(caller, target)


def outcome(response) -> str:
    """The class of an answer."""
    code = response.status_code
    if code in (401, 403):
        return DENY
    login_first = resolve_url(settings.LOGIN_URL) + "?next="
    if code in (301, 302) and response["Location"].startswith(login_first):
        return DENY
    if code == 404:
        return HIDE
    if code < 400 or code in (400, 409):
        return ALLOW
    return f"unexpected {code}"


# --- Routes ------------------------------------------------------------------------------
def walk(patterns, prefix: str = ""):
    """(name, pattern, callback) of every route, recursively."""
    for p in patterns:
        if isinstance(p, URLResolver):
            if str(p.pattern) in SKIPPED_PREFIXES:
                continue
            yield from walk(p.url_patterns, prefix + str(p.pattern))
        else:
            yield p.name, prefix + str(p.pattern), p.callback


def routes() -> list[tuple[str, str, Callable]]:
    return [r for r in walk(get_resolver().url_patterns) if r[0] not in SKIPPED_NAMES]


KWARG = re.compile(r"<(?:\w+:)?(\w+)>")


# --- Data --------------------------------------------------------------------------------
class SecureClient(Client):
    """Requests over https, as production serves them (SECURE_SSL_REDIRECT is on)."""

    def __init__(self, **defaults):
        # A server error is a finding of the matrix, not the end of the walk.
        super().__init__(raise_request_exception=False, **defaults)

    def generic(self, *args, **extra):
        extra["secure"] = True
        return super().generic(*args, **extra)


def _project(name: str, creator) -> tuple:
    project = services.create_project(
        name=name,
        task_type=TaskType.TRANSCRIPTION,  # the normalisation page exists for these only
        overlap=2,
        created_by=creator,
        guideline_text="Type what you read.",
    )
    item = project.items.create(external_id=f"{name}-1", kind="image", text="")
    item.image.save("a.png", ContentFile(png_bytes()), save=False)
    item.thumbnail.save("a.jpg", ContentFile(png_bytes()), save=False)
    item.save()
    return project, item


def build_world(make_user) -> tuple[dict, dict, dict]:
    """Projects A and B with one object of every kind; returns the users, the tokens'
    secrets and the URL kwargs of each target."""
    users = {
        OUTSIDER: make_user("outsider"),
        LABELER: make_user("labeler"),
        VIEWER: make_user("viewer"),
        SME: make_user("sme"),
        MANAGER: make_user("manager"),
        SUPERUSER: make_user("root", is_superuser=True, is_staff=True),
    }
    manager_b, labeler_b = make_user("manager-b"), make_user("labeler-b")
    a, item_a = _project("alpha", users[MANAGER])
    b, item_b = _project("beta", manager_b)
    for caller, role in ((LABELER, Role.LABELER), (VIEWER, Role.VIEWER), (SME, Role.SME)):
        services.set_membership(project=a, user=users[caller], role=role)
    services.set_membership(project=b, user=labeler_b, role=Role.LABELER)

    root = SecureClient()
    root.force_login(users[SUPERUSER])
    secrets = {}
    for caller, project, scopes in (
        (TOKEN_READ, a, ["read"]),
        (TOKEN_WRITE, a, ["read", "write"]),
        (TOKEN_OTHER, b, ["read"]),
    ):
        answer = root.post(
            f"/api/v1/projects/{project.pk}/tokens/",
            {"name": caller, "scopes": scopes},
            content_type="application/json",
        )
        assert answer.status_code == 201, answer.content
        secrets[caller] = answer.json()["token"]

    kwargs = {}
    for target, project, item, labeler in (
        (OWN, a, item_a, users[LABELER]),
        (OTHER, b, item_b, labeler_b),
    ):
        run = project.agreement_runs.create(
            status="failed", error="too few labels", finished_at=timezone.now()
        )
        flag = project.flags.create(run=run, kind="item_disagreement", summary="look")
        flag.items.add(item)
        versions = [
            project.dataset_versions.create(status="succeeded", content_hash=f"{target}{n}")
            for n in (1, 2)
        ]
        victim = root.post(
            f"/api/v1/projects/{project.pk}/tokens/",
            {"name": "victim"},
            content_type="application/json",
        ).json()
        assignment = project.assignments.create(
            item=item, labeler=labeler, expires_at=timezone.now() + timedelta(hours=1)
        )
        kwargs[target] = {
            "project_id": project.pk,
            "item_id": item.pk,
            "assignment_id": assignment.pk,
            "run_id": run.pk,
            "flag_id": flag.pk,
            "dataset_id": versions[0].pk,
            "other_id": versions[1].pk,
            "model_run_id": project.model_runs.create(name="baseline").pk,
            "monitoring_run_id": project.monitoring_runs.create(status="failed").pk,
            "other_model_run_id": project.model_runs.create(name="candidate").pk,
            "token_id": victim["id"],
            "username": labeler.username,
        }
    return users, secrets, kwargs


def clients(users: dict, secrets: dict) -> dict[str, Client]:
    out = {ANON: SecureClient()}
    for caller, user in users.items():
        out[caller] = SecureClient()
        out[caller].force_login(user)
    for caller, secret in secrets.items():
        out[caller] = SecureClient(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return out


# --- The test ----------------------------------------------------------------------------
def test_every_route_answers_every_caller_as_the_matrix_says(make_user, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    users, secrets, kwargs = build_world(make_user)
    callers = clients(users, secrets)
    found = routes()
    problems: list[str] = []
    names = {name for name, _, _ in found}
    for name in sorted(set(MATRIX) - names):
        problems.append(f"{name}: in the matrix but no such route (stale entry)")
    n_requests = 0
    for name, pattern, callback in found:
        if name not in MATRIX:
            problems.append(f"{name} ({pattern}): no entry in MATRIX; decide who may call it")
            continue
        is_api = pattern.startswith("api/")
        view_class = getattr(callback, "cls", None)  # a DRF view: compare its handlers
        if view_class is not None:
            handlers = {
                m.upper()
                for m in ("get", "post", "put", "patch", "delete")
                if hasattr(view_class, m)
            }
            if handlers != set(MATRIX[name]):
                problems.append(
                    f"{name}: the view handles {sorted(handlers)}, "
                    f"MATRIX lists {sorted(MATRIX[name])}"
                )
        wanted = KWARG.findall(pattern)
        for method, rule in MATRIX[name].items():
            for target in (OWN, OTHER):
                values = kwargs[target]
                url = reverse(name, kwargs={k: values[k] for k in wanted})
                body = {k: v.format(**values) for k, v in PAGE_BODIES.get(name, {}).items()}
                for caller in CALLERS:
                    client = callers[caller]
                    with transaction.atomic():
                        if is_api:
                            response = client.generic(
                                method, url, "{}" if method != "GET" else "", "application/json"
                            )
                        elif method == "GET":
                            response = client.get(url)
                        else:
                            response = client.post(url, body)
                        transaction.set_rollback(True)
                    n_requests += 1
                    if (
                        caller in users
                        and not client.cookies.get(settings.SESSION_COOKIE_NAME).value
                    ):
                        client.force_login(users[caller])  # logged out by the logout route
                    want = expected(rule, method, caller, target, is_api)
                    got = outcome(response)
                    if got != want:
                        problems.append(
                            f"{name} {method} as {caller} on the {target} project's object: "
                            f"expected {want} ({rule.name}), got {got} "
                            f"({response.status_code} {_detail(response)})"
                        )
    assert not problems, f"{len(problems)} mismatches in {n_requests} requests:\n" + "\n".join(
        problems
    )


def _detail(response) -> str:
    if response.get("Content-Type", "").startswith("application/json"):
        try:
            return str(response.json().get("detail", ""))[:120]
        except (ValueError, AttributeError):
            return ""
    if response.status_code in (301, 302):
        return f"-> {response['Location']}"
    return ""
