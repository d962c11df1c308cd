"""OpenLineage run events of dataset builds, sent through the generic client of
:mod:`provenance.lineage` (optional and never raising, like every lineage event)."""

from __future__ import annotations

from datasets.models import DatasetVersion
from provenance.lineage import emit_run_event, is_configured


def emit_dataset_build(version: DatasetVersion, event_type: str, error: str | None = None) -> bool:
    """START / COMPLETE / FAIL of a dataset version build."""
    if not is_configured():
        return False
    slug = version.project.slug
    run_id = version.request.get("agreement_run")
    return emit_run_event(
        event_type=event_type,
        job_name="dataset_build",
        run_key=f"dataset_version:{version.pk}",
        namespace_suffix=slug,
        inputs=[f"project/{slug}/items", f"agreement_run/{run_id}/consensus"],
        outputs=[f"dataset_version/{version.pk}"],
        error=error,
    )
