"""Schemathesis against a live server (issue 13, item 5): every documented operation,
called as each role (labeler, SME, manager, read-only pipeline token) with generated
valid and invalid input, answers without a 5xx, with a status code, content type and body
that the OpenAPI schema documents.

Bounded and deterministic: Hypothesis is derandomized (the same cases on every run) and
each operation gets ``EXAMPLES`` positive and ``EXAMPLES`` negative cases per role. Path
parameters are the ids of real objects (a project with labels, an agreement run with
flags, two dataset versions, two model runs, tokens), so the cases reach the handlers
instead of stopping at a 404.

The roles run in a fixed order, the manager last: its cases may delete members, revoke
tokens or archive the project, which would change what the others see.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
import requests
import schemathesis
from django.test.utils import override_settings
from hypothesis import HealthCheck, Phase, given, settings
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.auth import ClientAddressThrottle
from config import ratelimit
from consistency import monitoring
from consistency.model_runs import upload_model_run
from consistency.models import AgreementRun, Flag, MonitoringRun, RunStatus
from consistency.runs import execute_agreement_run, validate_params
from datasets import services as dataset_services
from labeling import assignment, services
from labeling.models import Role
from tests.datasets.conftest import build, label_items, make_items

pytestmark = pytest.mark.integration

# Cases per operation, per generation mode, per role. CI keeps the default: 306 cases per
# role, about two minutes on the shared 2-core machine at a load of 12.
# CONCORD_SCHEMATHESIS_EXAMPLES raises it for a longer local run (10: 1,020 cases per
# role, nine minutes), CONCORD_SCHEMATHESIS_ROLES picks roles ("manager,sme").
EXAMPLES = int(os.environ.get("CONCORD_SCHEMATHESIS_EXAMPLES", "3"))
ALL_ROLES = ("pipeline", "labeler", "sme", "manager")
ROLES = tuple(
    r for r in ALL_ROLES if r in os.environ.get("CONCORD_SCHEMATHESIS_ROLES", ",".join(ALL_ROLES))
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def live(request, monkeypatch):
    """The live server over plain HTTP (production settings would redirect to HTTPS).

    The generated log-ins fail from 127.0.0.1 and are counted in the shared cache, which
    outlives the test: they are counted under keys of this test's own, so later tests
    logging in from the same address are not refused for them."""
    monkeypatch.setattr(ratelimit, "KEY_NAMESPACE", f"login-fail-schemathesis-{os.getpid()}")
    monkeypatch.setattr(
        ClientAddressThrottle,
        "cache_format",
        f"schemathesis-{os.getpid()}-" + ClientAddressThrottle.cache_format,
    )
    override = override_settings(
        SECURE_SSL_REDIRECT=False,
        SESSION_COOKIE_SECURE=False,
        CSRF_COOKIE_SECURE=False,
        SECURE_HSTS_SECONDS=0,
    )
    override.enable()
    request.addfinalizer(override.disable)
    return request.getfixturevalue("live_server")


@pytest.fixture
def world(transactional_db, project, manager, labelers, make_user):
    return build_world(project, manager, labelers, make_user)


def build_world(project, manager, labelers, make_user) -> dict:
    """Real objects for every path parameter, and a credential per role:
    ``{"credentials": {role: Authorization header}, "path_parameters": {name: value}}``."""
    sme = make_user("sme")
    services.set_membership(project=project, user=sme, role=Role.SME)
    spare = make_user("spare")
    services.set_membership(project=project, user=spare, role=Role.VIEWER)
    items = make_items(project, 24, metadata=lambda i: {"factory": "AB"[i % 2], "line": i % 3})

    def value(i, j):
        if i % 5 == 0:
            return ["scratch", "dent", "no_defect"][j]  # disputed items raise flags
        return "scratch" if i % 3 == 0 else "no_defect"

    label_items(items, labelers, value)
    run = AgreementRun.objects.create(
        project=project, status=RunStatus.QUEUED, params=validate_params(project, {})
    )
    run = execute_agreement_run(run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    flag = Flag.objects.filter(project=project).order_by("pk").first()
    assert flag is not None
    first = build(project, splits={"train": 0.8, "test": 0.2}, seed=1)
    second = build(project, splits={"train": 0.5, "test": 0.5}, seed=2)
    model_runs = [
        upload_model_run(
            project=project,
            name=f"model-{n}",
            predictions=[
                {"item": it.external_id, "value": "scratch" if (k + n) % 2 else "no_defect"}
                for k, it in enumerate(items)
            ],
            created_by=manager,
        )
        for n in (1, 2)
    ]
    monitoring_run = MonitoringRun.objects.create(
        project=project, params=monitoring.validate_params(project, {}), status=RunStatus.QUEUED
    )
    monitoring_run = monitoring.execute_monitoring_run(monitoring_run.pk)
    assert monitoring_run.status == RunStatus.SUCCEEDED, monitoring_run.error
    _, pipeline_secret = dataset_services.create_pipeline_token(
        project=project, name="pipeline", created_by=manager
    )
    spare_token, _ = dataset_services.create_pipeline_token(
        project=project, name="spare", created_by=manager
    )
    # A fresh labeler holds an assignment on an item nobody has labeled yet.
    make_items(project, 4, prefix="fresh")
    newcomer = make_user("labeler-new")
    services.set_membership(project=project, user=newcomer, role=Role.LABELER)
    handed = assignment.next_item_for(project, newcomer)
    assert handed is not None
    credentials = {
        "pipeline": f"Bearer {pipeline_secret}",
        "labeler": f"Token {Token.objects.create(user=newcomer).key}",
        "sme": f"Token {Token.objects.create(user=sme).key}",
        "manager": f"Token {Token.objects.create(user=manager).key}",
    }
    path_parameters = {
        "project_id": project.pk,
        "item_id": handed.item_id,
        "run_id": run.pk,
        "flag_id": flag.pk,
        "dataset_id": first.pk,
        "other_id": second.pk,
        "model_run_id": model_runs[0].pk,
        "other_model_run_id": model_runs[1].pk,
        "monitoring_run_id": monitoring_run.pk,
        "assignment_id": handed.pk,
        "token_id": spare_token.pk,
        "username": spare.username,
    }
    return {"credentials": credentials, "path_parameters": path_parameters}


def run_operation(operation, *, mode, base_url, session, headers, path_parameters) -> int:
    """Run ``EXAMPLES`` derandomized cases of one operation; returns how many ran.
    Raises schemathesis's failure (with a curl line to reproduce) on the first failing
    case; no shrinking, which would multiply the requests."""
    wanted = {
        p.name: path_parameters[p.name]
        for p in operation.path_parameters
        if p.name in path_parameters
    }
    ran = 0

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=wanted))
    def check(case):
        nonlocal ran
        ran += 1
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=60)
        case.validate_response(response, checks=CHECKS, headers=headers)

    check()
    return ran


def test_no_5xx_and_no_schema_violation_for_any_role(live, world):
    base_url = live.url
    raw = requests.get(f"{base_url}/api/v1/schema/?format=json", timeout=30)
    assert raw.status_code == 200, raw.text[:500]
    schema = schemathesis.openapi.from_dict(raw.json())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 40
    failures: list[str] = []
    cases: Counter = Counter()
    for role in ROLES:
        headers = {"Authorization": world["credentials"][role]}
        with requests.Session() as session:
            for operation in operations:
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    try:
                        cases[role] += run_operation(
                            operation,
                            mode=mode,
                            base_url=base_url,
                            session=session,
                            headers=headers,
                            path_parameters=world["path_parameters"],
                        )
                    except (Exception, BaseExceptionGroup) as exc:  # every failing operation
                        failures.append(f"[{role} {mode.value}] {operation.label}: {exc}")
    print(f"schemathesis cases per role: {dict(cases)}")
    assert not failures, "\n\n".join(failures)
    assert all(cases[role] >= len(operations) for role in ROLES), cases


def test_the_checks_refuse_a_5xx_an_undocumented_status_and_a_wrong_body(api, manager, project):
    """The checks above are not vacuous: a 500, a status the schema does not list and a
    body of the wrong shape each fail them."""
    from schemathesis.core.transport import Response

    body = api.as_user(manager).get("/api/v1/schema/?format=json").json()
    operation = schemathesis.openapi.from_dict(body)["/api/v1/projects/{project_id}/"]["GET"]
    case = operation.Case(path_parameters={"project_id": project.pk})

    def answer(status: int, payload: bytes) -> Response:
        sent = requests.Request("GET", f"http://testserver/api/v1/projects/{project.pk}/")
        return Response(
            status_code=status,
            headers={"Content-Type": ["application/json"]},
            content=payload,
            request=sent.prepare(),
            elapsed=0.0,
            verify=True,
        )

    for status, payload in (
        (500, b'{"detail": "boom"}'),
        (418, b'{"detail": "teapot"}'),
        (200, b'{"id": "not a number"}'),
    ):
        with pytest.raises(BaseExceptionGroup):
            case.validate_response(answer(status, payload), checks=CHECKS)
    case.validate_response(answer(404, b'{"detail": "not found"}'), checks=CHECKS)
