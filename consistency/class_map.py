"""The project's classes as codes: ``merged_into`` chains resolved to their root class.

Every label of a run is coded by the position of its root class in :class:`ClassMap`,
so a merge decided by an SME changes the codes, never the stored annotations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeling.models import LabelClass, Project
from labeling.selectors import class_roots


@dataclass(frozen=True)
class ClassMap:
    """Root classes after merges, in code order, and the code of every stored class id."""

    ids: list[int]  # root class id per code
    keys: list[str]
    names: list[str]
    borderline: np.ndarray  # bool per code
    metric_value: np.ndarray  # float per code: value, else rank, else NaN
    ranks: list  # rank per code (None where the class has none)
    code_of: dict[int, int]  # any class id (merged or not) -> code of its root
    merges: dict[str, str]  # merged class key -> root class key

    def codes(self, class_ids: np.ndarray) -> np.ndarray:
        """Codes for stored class ids (shape (N,)); -1 for no class or an unknown id."""
        if not self.code_of:
            return np.full(class_ids.shape, -1, dtype=np.int64)
        lookup_ids = np.fromiter(self.code_of.keys(), dtype=np.int64)
        lookup_codes = np.fromiter(self.code_of.values(), dtype=np.int64)
        order = np.argsort(lookup_ids)
        lookup_ids, lookup_codes = lookup_ids[order], lookup_codes[order]
        pos = np.searchsorted(lookup_ids, class_ids)
        pos = np.minimum(pos, lookup_ids.size - 1)
        return np.where(lookup_ids[pos] == class_ids, lookup_codes[pos], -1)


def class_map(project: Project, level: str) -> ClassMap:
    """The project's classes with ``merged_into`` chains resolved to their root class
    (``labeling.selectors.class_roots``, the one rule).

    Ordinal projects order root classes by rank (classes without a rank last).
    """
    rows = list(
        LabelClass.objects.filter(project=project)
        .order_by("order", "id")
        .values("id", "key", "name", "rank", "value", "is_borderline", "merged_into_id")
    )
    by_id = {r["id"]: r for r in rows}
    root_of = class_roots({r["id"]: r["merged_into_id"] for r in rows})
    roots = [r for r in rows if r["merged_into_id"] is None]
    if level == "ordinal":
        roots.sort(key=lambda r: (r["rank"] is None, r["rank"] or 0))
    code_by_root = {r["id"]: i for i, r in enumerate(roots)}
    code_of = {
        r["id"]: code_by_root[root_of[r["id"]]] for r in rows if root_of[r["id"]] in code_by_root
    }
    merges = {
        r["key"]: by_id[root_of[r["id"]]]["key"] for r in rows if r["merged_into_id"] is not None
    }
    metric = np.array(
        [
            r["value"]
            if r["value"] is not None
            else (r["rank"] if r["rank"] is not None else np.nan)
            for r in roots
        ],
        dtype=np.float64,
    )
    return ClassMap(
        ids=[r["id"] for r in roots],
        keys=[r["key"] for r in roots],
        names=[r["name"] for r in roots],
        borderline=np.array([r["is_borderline"] for r in roots], dtype=bool),
        metric_value=metric,
        ranks=[r["rank"] for r in roots],
        code_of=code_of,
        merges=merges,
    )
