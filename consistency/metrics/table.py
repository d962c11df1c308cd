"""Long-format label table: integer codes for items, labelers and values.

Every metric in :mod:`consistency.metrics` works from three aligned arrays of
shape ``(N,)`` -- one entry per label (annotation):

``items``
    int64 item codes ``0..n_items-1``.
``labelers``
    int64 labeler codes ``0..n_labelers-1``.
``values``
    nominal / ordinal: int64 class codes ``0..n_classes-1`` into an ordered
    class list; interval / ratio: float64 values.

Missing labels are simply absent rows (or a negative code / NaN value, which is
dropped).  Nothing here imports Django.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .alpha import CATEGORICAL_LEVELS, AgreementStats, check_level


@dataclass(frozen=True, eq=False)
class LabelTable:
    """Factorized long table of labels.

    Attributes
    ----------
    items, labelers : ndarray of int64, shape (N,)
        Codes into :attr:`item_keys` and :attr:`labeler_names`.
    values : ndarray, shape (N,)
        int64 class codes into :attr:`classes` (nominal, ordinal) or float64 values
        (interval, ratio).
    level : str
        ``"nominal"``, ``"ordinal"``, ``"interval"`` or ``"ratio"``.
    item_keys : list, length n_items
        Original item identifiers, ``item_keys[code]``.
    labeler_names : list of str, length n_labelers
    classes : list of str or None
        Class names for nominal / ordinal data, in order (the order matters for ordinal).
    """

    items: np.ndarray
    labelers: np.ndarray
    values: np.ndarray
    level: str
    item_keys: list = field(default_factory=list)
    labeler_names: list = field(default_factory=list)
    classes: list | None = None

    @property
    def n_items(self) -> int:
        return len(self.item_keys)

    @property
    def n_labelers(self) -> int:
        return len(self.labeler_names)

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        item_col: str = "item",
        labeler_col: str = "labeler",
        value_col: str = "value",
        *,
        level: str = "nominal",
        classes: list | None = None,
    ) -> LabelTable:
        """Factorize a long DataFrame into codes.

        Parameters
        ----------
        df : DataFrame, shape (N, >=3)
            One row per label.  Rows whose value is missing are dropped.
        item_col, labeler_col, value_col : str
            Column names.
        level : str
            Level of measurement.
        classes : list, optional
            Ordered class list for nominal / ordinal data.  Values not in it raise
            ValueError.  Default: the sorted distinct values.

        Examples
        --------
        >>> df = pd.DataFrame({"item": ["a", "a", "b"], "labeler": ["x", "y", "x"],
        ...                    "value": ["cat", "dog", "cat"]})
        >>> t = LabelTable.from_frame(df)
        >>> t.items.tolist(), t.labelers.tolist(), t.values.tolist(), t.classes
        ([0, 0, 1], [0, 1, 0], [0, 1, 0], ['cat', 'dog'])
        """
        check_level(level)
        for col in (item_col, labeler_col, value_col):
            if col not in df.columns:
                raise ValueError(f"column {col!r} not in frame (columns: {list(df.columns)})")
        df = df[df[value_col].notna()]
        item_codes, item_keys = pd.factorize(df[item_col], sort=True)
        labeler_codes, labeler_keys = pd.factorize(df[labeler_col], sort=True)
        if level in CATEGORICAL_LEVELS:
            if classes is None:
                classes = sorted(pd.unique(df[value_col]).tolist())
            known = df[value_col].isin(list(classes)).to_numpy()
            if not known.all():
                unknown = sorted(set(df[value_col][~known].astype(str)))[:5]
                raise ValueError(f"values not in classes: {unknown}")
            cat = pd.Categorical(df[value_col], categories=list(classes))
            values = np.asarray(cat.codes, dtype=np.int64)
            classes = [str(c) for c in classes]
        else:
            try:
                values = df[value_col].to_numpy(dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{level} values must be numeric: {exc}") from exc
            classes = None
        return cls(
            items=np.asarray(item_codes, dtype=np.int64),
            labelers=np.asarray(labeler_codes, dtype=np.int64),
            values=values,
            level=level,
            item_keys=list(item_keys),
            labeler_names=[str(x) for x in labeler_keys],
            classes=classes,
        )

    def stats(self):
        """Sufficient statistics of the whole table (see :class:`AgreementStats`)."""
        return AgreementStats.from_labels(
            self.items,
            self.labelers,
            self.values,
            level=self.level,
            n_classes=len(self.classes) if self.classes is not None else None,
            n_labelers=self.n_labelers,
        )
