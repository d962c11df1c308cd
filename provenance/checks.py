"""System checks of the provenance app."""

from __future__ import annotations

from django.core.checks import Error, register

from provenance import lineage


@register()
def lineage_client_installed(app_configs=None, **kwargs) -> list[Error]:
    """An OpenLineage target without the client would silently emit nothing: refuse it."""
    if lineage.is_configured() and not lineage.client_is_installed():
        return [
            Error(
                "OPENLINEAGE_URL or OPENLINEAGE_FILE is set but openlineage-python is not "
                "installed.",
                hint="pip install 'concord[lineage]', or unset OPENLINEAGE_URL/OPENLINEAGE_FILE.",
                id="provenance.E001",
            )
        ]
    return []
