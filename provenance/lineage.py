"""OpenLineage run events: the generic client, for agreement runs and dataset builds.

Optional: nothing happens unless ``OPENLINEAGE_URL`` (an OpenLineage HTTP endpoint such
as Marquez) or ``OPENLINEAGE_FILE`` (a file that receives one JSON event per line) is set.
Then ``openlineage-python`` must be installed (``pip install 'concord[lineage]'``): the
system check ``provenance.E001`` refuses to start without it. The client is imported
when first needed (deployments without lineage need not install it); a failure to emit is
logged, never raised, so lineage can never break a build.

Agreement runs (owned by ``consistency``) call :func:`emit_run_event` themselves::

    from provenance.lineage import emit_run_event
    emit_run_event(event_type="START", job_name="agreement_run", run_key=f"agreement_run:{run.pk}",
                   namespace_suffix=project.slug, inputs=[f"project/{project.slug}/annotations"],
                   outputs=[f"agreement_run/{run.pk}"])

Dataset builds (owned by ``datasets``) go through ``datasets.lineage.emit_dataset_build``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import traceback
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

log = logging.getLogger(__name__)

PRODUCER = "https://github.com/concord/concord"
NAMESPACE = os.environ.get("OPENLINEAGE_NAMESPACE", "concord")
EVENT_TYPES = ("START", "COMPLETE", "FAIL", "ABORT", "RUNNING")


def is_configured() -> bool:
    """Whether an OpenLineage target is set (``OPENLINEAGE_URL`` or ``OPENLINEAGE_FILE``)."""
    return bool(os.environ.get("OPENLINEAGE_URL") or os.environ.get("OPENLINEAGE_FILE"))


def _client():
    """An OpenLineage client for the configured target (see :func:`is_configured`)."""
    from openlineage.client import OpenLineageClient

    path = os.environ.get("OPENLINEAGE_FILE")
    if path:
        from openlineage.client.transport.file import FileConfig, FileTransport

        return OpenLineageClient(
            transport=FileTransport(FileConfig(log_file_path=path, append=True))
        )
    return OpenLineageClient(url=os.environ["OPENLINEAGE_URL"])


def run_id_for(run_key: str) -> str:
    """A stable UUID per Concord run, so START and COMPLETE of one run share it."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"concord:{run_key}"))


def emit_run_event(
    *,
    event_type: str,
    job_name: str,
    run_key: str,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    error: str | None = None,
    namespace_suffix: str = "",
) -> bool:
    """Emit one OpenLineage run event; returns whether an event was sent.

    ``event_type``: START | COMPLETE | FAIL (| ABORT | RUNNING). ``job_name``: e.g.
    ``agreement_run`` or ``dataset_build``. ``run_key``: a unique, stable id of the run
    (e.g. ``agreement_run:17``). ``inputs`` / ``outputs``: dataset names in the Concord
    namespace. ``error``: the failure message for FAIL. Does nothing when unconfigured.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"event_type must be one of {EVENT_TYPES}")
    if not is_configured():
        return False
    try:
        client = _client()
        from openlineage.client.event_v2 import (
            InputDataset,
            Job,
            OutputDataset,
            Run,
            RunEvent,
            RunState,
        )
        from openlineage.client.facet_v2 import error_message_run

        namespace = f"{NAMESPACE}/{namespace_suffix}" if namespace_suffix else NAMESPACE
        facets = {}
        if error:
            facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=error, programmingLanguage="python", stackTrace=None
            )
        event = RunEvent(
            eventType=getattr(RunState, event_type),
            eventTime=datetime.now(UTC).isoformat(),
            run=Run(runId=run_id_for(run_key), facets=facets),
            job=Job(namespace=namespace, name=job_name),
            producer=PRODUCER,
            inputs=[InputDataset(namespace=namespace, name=name) for name in inputs],
            outputs=[OutputDataset(namespace=namespace, name=name) for name in outputs],
        )
        client.emit(event)
    except Exception:  # lineage must never break the job it describes
        log.warning("could not emit an OpenLineage event:\n%s", traceback.format_exc())
        return False
    return True


def client_is_installed() -> bool:
    """Whether ``openlineage-python`` can be imported (checked without importing it)."""
    return (
        importlib.util.find_spec("openlineage") is not None
        and importlib.util.find_spec("openlineage.client") is not None
    )
