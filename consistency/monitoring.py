"""Monitoring runs: a baseline window against a current window of one project.

The adapter between the database and the pure drift tests in
:mod:`consistency.metrics.drift`. Entry points (every write about monitoring goes through
one of them):

``validate_params``           windows and slice keys, with defaults; 400 naming the field
``start_monitoring_run``      create the run (queued), enqueue it on commit
``execute_monitoring_run``    the job: load, compute every check, decide, raise flags, store
``start_due_monitoring_runs`` the daily schedule: one run per project that is due

Time: items are placed by ``metadata.captured_at`` (ISO 8601; else their import time),
labels by the annotation's ``created_at``. Only current annotations count.

Checks (``results.checks[]``, DESIGN "Monitoring (REST contract)"), each metric over the
whole project (``slice`` null) and per value of each slice key:

* ``mean_brightness``, ``width``, ``height`` -- the item's image statistics;
* ``missing_metadata`` -- share of items without the common key ``field`` (overall);
* ``volume`` -- items per day (overall; the figures carry items per source batch), and
  how the items split over the values of each slice key (``slice.value`` null);
* ``label_distribution`` -- class shares (classes after merges), overall and per slice;
* ``krippendorff_alpha``, ``gwet_ac1`` -- agreement among the labels made in each window
  (nominal), with bootstrap intervals;
* ``labeler_agreement`` -- each labeler's agreement with the others' majority on the same
  items (the labeler's labels placed in time; items where the other labelers give at
  least two labels and a single most frequent class);
* ``labeler_label_distribution`` -- each labeler's class shares.

Each check carries ``series``: its figure week by week over both windows with the alarm
band, and ``since``: the first week of the latest run of weeks outside the band.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models.fields.json import KT
from django.utils import timezone

from consistency.metrics import drift
from consistency.metrics.alpha import AlphaEngine, build_profiles
from consistency.metrics.gwet import gwet_ac1
from consistency.models import (
    Flag,
    FlagKind,
    FlagStatus,
    MonitoringRun,
    MonitoringTrigger,
    RunStatus,
)
from labeling.models import (
    Annotation,
    GoldLabel,
    ImageStatsStatus,
    Item,
    LabelClass,
    MonitoringSchedule,
    Project,
    TaskType,
)
from labeling.selectors import effective_class_map
from provenance import events

logger = logging.getLogger(__name__)
User = get_user_model()

PARAM_KEYS = ("baseline", "current", "slices", "n_bootstrap", "seed")
# In this order: when several keys cut the same items (a camera, its line, its serial,
# its settings), the check of the first one stands for the others (``same_as``).
SLICE_KEYS = ("camera", "factory", "line", "phone_model", "device", "camera_settings")
# DESIGN's common metadata keys: the missing-metadata checks watch each one present.
COMMON_KEYS = (
    "factory",
    "line",
    "camera",
    "camera_settings",
    "phone_model",
    "captured_at",
    "device",
)
METADATA_KEY_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}")
NUMERIC_METRICS = ("mean_brightness", "width", "height")
DEFAULT_N_BOOTSTRAP = 200
MAX_N_BOOTSTRAP = 2000
MAX_SLICE_VALUES = 40  # per key; the most frequent ones (a serial-number key has thousands)
CURRENT_DAYS, BASELINE_DAYS = 14, 28
SCHEDULE_EVERY = timedelta(hours=23)
FETCH_BATCH = 100_000  # "daily", with slack for the hourly beat tick


# --------------------------------------------------------------------------- parameters


def _parse_time(value, field: str, errors: dict) -> datetime | None:
    if not isinstance(value, str):
        errors[field] = ["an ISO 8601 date or date-time"]
        return None
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        errors[field] = [f"{value!r} is not an ISO 8601 date or date-time"]
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def data_end(project: Project) -> datetime:
    """Midnight (UTC) after the project's latest item time (capture time, else import
    time) or label time; now if the project is empty.

    The default windows end here rather than at "now" so a project whose data stopped
    arriving is still compared on its last weeks (the volume check reports the stop)."""
    latest = []
    label = (
        Annotation.objects.filter(project=project, is_current=True)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    if label:
        latest.append(label)
    # an item is placed by its capture time; its import time only when it has none
    item = (
        Item.objects.filter(project=project)
        .exclude(metadata__has_key="captured_at")
        .order_by("-created_at")
        .first()
    )
    if item:
        latest.append(item.created_at)
    captured = (
        Item.objects.filter(project=project, metadata__has_key="captured_at")
        .values_list("metadata__captured_at", flat=True)
        .order_by("-metadata__captured_at")
        .first()
    )
    if isinstance(captured, str):
        parsed = pd.to_datetime(captured, utc=True, errors="coerce")
        if not pd.isna(parsed):
            latest.append(parsed.to_pydatetime())
    end = max(latest) if latest else timezone.now()
    end = end.astimezone(UTC)
    return datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)


def default_slices(project: Project) -> list[str]:
    """The common metadata keys the project's items carry."""
    items = Item.objects.filter(project=project)
    return [k for k in SLICE_KEYS if items.filter(metadata__has_key=k).exists()]


def validate_params(project: Project, params: dict | None) -> dict:
    """Normalised run parameters, or ValidationError naming the field at fault.

    ``{baseline: {start, end}, current: {start, end}, slices: [metadata keys],
    n_bootstrap: 1..2000 (default 200), seed: int (default 0)}``. Default windows: the
    last 14 days before :func:`data_end` (current) and the 28 days before those
    (baseline). Times are ISO 8601 (a time without zone is UTC); ``start < end``.
    """
    params = dict(params or {})
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(params) - set(PARAM_KEYS))
    if unknown:
        errors["params"] = [
            f"unknown parameter(s): {', '.join(unknown)}; known: {', '.join(PARAM_KEYS)}"
        ]
    end = None
    windows = {}
    for name in ("current", "baseline"):
        window = params.get(name)
        if window is None:
            end = end or data_end(project)
            if name == "current":
                start, stop = end - timedelta(days=CURRENT_DAYS), end
            else:
                cur = windows.get("current")
                stop = cur["start"] if cur else end - timedelta(days=CURRENT_DAYS)
                start = stop - timedelta(days=BASELINE_DAYS)
            windows[name] = {"start": start, "end": stop}
            continue
        if not isinstance(window, dict) or set(window) - {"start", "end"}:
            errors[name] = ["an object {start, end} of ISO 8601 times"]
            continue
        start = _parse_time(window.get("start"), f"{name}.start", errors)
        stop = _parse_time(window.get("end"), f"{name}.end", errors)
        if start and stop:
            if start >= stop:
                errors[name] = ["start must be before end"]
            windows[name] = {"start": start, "end": stop}
    slices = params.get("slices")
    if slices is None:
        slices = default_slices(project)
    elif not isinstance(slices, list) or not all(isinstance(s, str) for s in slices):
        errors["slices"] = ["a list of metadata keys"]
    else:
        bad = [s for s in slices if not METADATA_KEY_PATTERN.fullmatch(s)]
        if bad:
            errors["slices"] = [f"not metadata keys: {', '.join(map(repr, bad))}"]
        slices = list(dict.fromkeys(slices))
    n_bootstrap = params.get("n_bootstrap", DEFAULT_N_BOOTSTRAP)
    if (
        not isinstance(n_bootstrap, int)
        or isinstance(n_bootstrap, bool)
        or not 1 <= n_bootstrap <= MAX_N_BOOTSTRAP
    ):
        errors["n_bootstrap"] = [f"a whole number from 1 to {MAX_N_BOOTSTRAP}"]
    seed = params.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        errors["seed"] = ["a non-negative whole number"]
    if errors:
        raise ValidationError(errors)
    return {
        "baseline": {k: _iso(v) for k, v in windows["baseline"].items()},
        "current": {k: _iso(v) for k, v in windows["current"].items()},
        "slices": slices,
        "n_bootstrap": n_bootstrap,
        "seed": seed,
    }


# --------------------------------------------------------------------------- start


@transaction.atomic
def start_monitoring_run(
    *,
    project: Project,
    params: dict | None = None,
    created_by: AbstractBaseUser | None = None,
    trigger: str = MonitoringTrigger.MANUAL,
) -> MonitoringRun:
    """Create a queued monitoring run and enqueue it once the transaction commits."""
    clean = validate_params(project, params)
    run = MonitoringRun.objects.create(
        project=project,
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
        trigger=trigger,
        params=clean,
        status=RunStatus.QUEUED,
    )

    def enqueue():
        from consistency.tasks import run_monitoring

        result = run_monitoring.delay(run.pk)
        MonitoringRun.objects.filter(pk=run.pk, celery_task_id="").update(
            celery_task_id=result.id or ""
        )

    transaction.on_commit(enqueue)
    return run


def due_projects(now: datetime | None = None) -> list[Project]:
    """Projects on the daily schedule without a scheduled run in the last day."""
    now = now or timezone.now()
    recent = MonitoringRun.objects.filter(
        trigger=MonitoringTrigger.SCHEDULED, created_at__gte=now - SCHEDULE_EVERY
    ).values("project_id")
    return list(
        Project.objects.filter(is_archived=False, monitoring_schedule=MonitoringSchedule.DAILY)
        .exclude(pk__in=recent)
        .order_by("pk")
    )


def start_due_monitoring_runs(now: datetime | None = None) -> list[int]:
    """Start a scheduled run for every due project (default windows); returns run ids.

    A project whose defaults cannot be computed is logged and skipped, not allowed to
    stop the others."""
    started = []
    for project in due_projects(now):
        try:
            run = start_monitoring_run(project=project, trigger=MonitoringTrigger.SCHEDULED)
        except ValidationError:
            logger.exception("scheduled monitoring run of project %s not started", project.pk)
            continue
        started.append(run.pk)
    return started


def pending_image_stats(project_id: int) -> int:
    """Items whose image statistics the worker has not computed yet."""
    return Item.objects.filter(project_id=project_id, stats_status=ImageStatsStatus.PENDING).count()


# --------------------------------------------------------------------------- loading


def _slice_value(value) -> str | None:
    """A metadata value as a slice value: text; a dict as ``k=v, ...`` (sorted keys);
    None for missing, empty or list values. Accepts the JSON text the database returns
    for a nested value."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        with contextlib.suppress(ValueError):  # text that only looks like JSON stays text
            value = json.loads(value)
    if value is None or value == "" or isinstance(value, list):
        return None
    if isinstance(value, dict):
        return ", ".join(f"{k}={value[k]}" for k in sorted(value)) or None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _by_distinct(values: list, fn) -> np.ndarray:
    """``fn`` applied to each distinct value only (a metadata key has few), as an object
    array in the order of ``values``."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    mapped = np.array([fn(u) for u in uniques] + [fn(None)], dtype=object)
    return mapped[codes]  # code -1 (missing) picks the last entry, fn(None)


def load_items(project: Project, slice_keys: Sequence[str]) -> pd.DataFrame:
    """One row per item: ``id, t`` (capture time else import time, UTC), the image
    statistics, ``source_batch``, one ``slice:<key>`` column per slice key and one
    ``has:<key>`` column per common key.

    The database extracts the metadata keys (``KT``), and the rows are read with a plain
    cursor: parsing 200,000 JSON documents into dicts was most of a large run's time."""
    keys = list(dict.fromkeys([*slice_keys, *COMMON_KEYS]))
    extracted = {f"k{i}": KT(f"metadata__{key}") for i, key in enumerate(keys)}
    qs = (
        Item.objects.filter(project=project)
        .order_by("id")
        .annotate(**extracted)
        .values_list(
            "id",
            "created_at",
            *NUMERIC_METRICS,
            "source_batch_id",
            *extracted,
        )
    )
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    base = ["id", "imported_at", *NUMERIC_METRICS, "source_batch"]
    columns = list(zip(*rows, strict=True)) if rows else [()] * (len(base) + len(keys))
    df = pd.DataFrame({name: list(col) for name, col in zip(base, columns, strict=False)})
    raw = dict(zip(keys, columns[len(base) :], strict=True))
    captured = _by_distinct(list(raw["captured_at"]), lambda v: v if isinstance(v, str) else None)
    t = pd.to_datetime(
        pd.Series(captured, dtype=object), utc=True, errors="coerce", format="ISO8601"
    )
    imported = pd.to_datetime(df["imported_at"], utc=True, format="ISO8601")
    df["t"] = t.fillna(imported)
    for key in slice_keys:
        df[f"slice:{key}"] = _by_distinct(list(raw[key]), _slice_value)
    for key in COMMON_KEYS:
        df[f"has:{key}"] = _by_distinct(
            list(raw[key]), lambda v: v not in (None, "", "[]", "{}", [], {})
        ).astype(bool)
    for name in NUMERIC_METRICS:
        df[name] = pd.to_numeric(df[name], errors="coerce").astype("float64")
    df["id"] = df["id"].astype(np.int64)
    return df.drop(columns=["imported_at"])


def load_labels(project: Project) -> tuple[pd.DataFrame, list[str], dict[int, str]]:
    """Current labels with a class: ``item, labeler (id), cls (code), t (UTC)``; the class
    keys (codes index them; merges applied) and the labelers' usernames."""
    mapping = effective_class_map(project)
    active = list(
        LabelClass.objects.filter(project=project, merged_into__isnull=True).order_by("order", "id")
    )
    code = {c.pk: i for i, c in enumerate(active)}
    table = connection.ops.quote_name(Annotation._meta.db_table)
    # Times as whole seconds since the epoch, computed by the database: a million rows of
    # four integers come back as one numpy block per batch, no datetime or string per row.
    if connection.vendor == "sqlite":
        epoch = "CAST(strftime('%%s', created_at) AS INTEGER)"
    else:
        epoch = "CAST(EXTRACT(EPOCH FROM created_at) AS BIGINT)"
    blocks = []
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT item_id, labeler_id, label_class_id, {epoch} FROM {table} "  # noqa: S608
            "WHERE project_id = %s AND is_current AND label_class_id IS NOT NULL",
            [project.pk],
        )
        while rows := cursor.fetchmany(FETCH_BATCH):
            blocks.append(np.array(rows, dtype=np.int64))
    block = np.concatenate(blocks) if blocks else np.zeros((0, 4), dtype=np.int64)
    df = pd.DataFrame(
        {
            "item": block[:, 0],
            "labeler": block[:, 1],
            "class_id": block[:, 2],
            "t": pd.to_datetime(block[:, 3], unit="s", utc=True),
        }
    )
    lookup = {cid: code[mapping.get(cid, cid)] for cid in mapping if mapping.get(cid, cid) in code}
    df["cls"] = df["class_id"].map(lookup)
    df = df.dropna(subset=["cls"])
    df["cls"] = df["cls"].astype(np.int64)
    names = dict(
        User.objects.filter(pk__in=df["labeler"].unique().tolist()).values_list("id", "username")
    )
    return df.drop(columns=["class_id"]), [c.key for c in active], names


# --------------------------------------------------------------------------- windows


EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


class Windows:
    """The two windows and the weeks they span (weeks start at the baseline's start)."""

    def __init__(self, params: dict):
        self.b0 = pd.Timestamp(params["baseline"]["start"])
        self.b1 = pd.Timestamp(params["baseline"]["end"])
        self.c0 = pd.Timestamp(params["current"]["start"])
        self.c1 = pd.Timestamp(params["current"]["end"])
        self.start = min(self.b0, self.c0)
        self.end = max(self.b1, self.c1)
        n_weeks = int(np.ceil((self.end - self.start) / pd.Timedelta(days=7)))
        self.weeks = [self.start + pd.Timedelta(days=7 * w) for w in range(max(n_weeks, 1))]

    @staticmethod
    def _seconds(t) -> np.ndarray:
        """Seconds since the epoch (UTC) of a tz-aware Series or Timestamp; NaN for NaT."""
        if isinstance(t, pd.Timestamp):
            return np.float64((t - EPOCH).total_seconds())
        return (t - EPOCH).dt.total_seconds().to_numpy(dtype=np.float64)

    def masks(self, t: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """Boolean arrays: in the baseline window, in the current window ([start, end))."""
        tv = self._seconds(t)
        b0, b1, c0, c1 = (self._seconds(x) for x in (self.b0, self.b1, self.c0, self.c1))
        return (tv >= b0) & (tv < b1), (tv >= c0) & (tv < c1)

    def week_of(self, t: pd.Series) -> np.ndarray:
        """Week index of each time (-1 outside the span)."""
        delta = self._seconds(t) - self._seconds(self.start)
        bad = ~np.isfinite(delta)
        w = np.floor(np.where(bad, -1, delta) / (7 * 86400)).astype(np.int64)
        w[bad | (delta < 0) | (w >= len(self.weeks))] = -1
        return w

    def week_labels(self) -> list[str]:
        return [w.strftime("%Y-%m-%d") for w in self.weeks]

    def in_current(self, w: int) -> bool:
        return self.weeks[w] + pd.Timedelta(days=7) > self.c0


# --------------------------------------------------------------------------- series


def _since(points: list[dict], low: float | None, high: float | None, windows: Windows):
    """Start of the latest run of weeks (reaching into the current window) whose figure
    lies outside [low, high]; None when the latest figured week is inside."""
    since = None
    for i, p in enumerate(points):
        v = p.get("value")
        if v is None:
            continue
        outside = (low is not None and v < low) or (high is not None and v > high)
        if outside and windows.in_current(i):
            since = since or p["week"]
        elif not outside:
            since = None
    return since


def _numeric_series(values, weeks, baseline_vals, min_effect, windows) -> dict:
    b = baseline_vals[np.isfinite(baseline_vals)]
    mean, std = (float(b.mean()), float(b.std())) if b.size else (None, None)
    points = []
    labels = windows.week_labels()
    ok = np.isfinite(values) & (weeks >= 0)
    sums = np.bincount(weeks[ok], weights=values[ok], minlength=len(labels))
    counts = np.bincount(weeks[ok], minlength=len(labels))
    for w, label in enumerate(labels):
        n = int(counts[w])
        points.append({"week": label, "n": n, "value": drift._f(sums[w] / n) if n else None})
    low = high = None
    if mean is not None:
        # the band a week's mean may move within before its shift reaches the minimum
        # effect size (a shift of the mean by min_effect standard deviations)
        low, high = drift._f(mean - min_effect * std), drift._f(mean + min_effect * std)
    return {
        "figure": "mean",
        "points": points,
        "alarm": {"low": low, "high": high},
        "since": _since(points, low, high, windows),
    }


def _distribution_series(codes, weeks, baseline_counts, n_codes, min_effect, windows) -> dict:
    labels = windows.week_labels()
    ok = weeks >= 0
    grid = np.bincount(weeks[ok] * n_codes + codes[ok], minlength=len(labels) * n_codes).reshape(
        len(labels), n_codes
    )
    points = []
    for w, label in enumerate(labels):
        n = int(grid[w].sum())
        points.append(
            {
                "week": label,
                "n": n,
                "value": drift.js_distance(baseline_counts, grid[w]) if n else None,
            }
        )
    return {
        "figure": "jensen_shannon_distance_to_baseline",
        "points": points,
        "alarm": {"low": None, "high": drift._f(min_effect)},
        "since": _since(points, None, min_effect, windows),
    }


def _proportion_series(hits, weeks, base_value, min_effect, windows) -> dict:
    labels = windows.week_labels()
    ok = weeks >= 0
    k = np.bincount(weeks[ok], weights=hits[ok].astype(np.float64), minlength=len(labels))
    n = np.bincount(weeks[ok], minlength=len(labels))
    points = [
        {"week": label, "n": int(n[w]), "value": drift._f(k[w] / n[w]) if n[w] else None}
        for w, label in enumerate(labels)
    ]
    low = high = None
    if base_value is not None:
        low, high = drift._f(base_value - min_effect), drift._f(base_value + min_effect)
    return {
        "figure": "value",
        "points": points,
        "alarm": {"low": low, "high": high},
        "since": _since(points, low, high, windows),
    }


# --------------------------------------------------------------------------- agreement


def _counts(items: np.ndarray, cls: np.ndarray, n_classes: int) -> np.ndarray:
    """Item x class counts of the labels given, shape (distinct items, n_classes)."""
    if items.size == 0:
        return np.zeros((0, n_classes), dtype=np.int64)
    _, pos = np.unique(items, return_inverse=True)
    flat = np.bincount(pos * n_classes + cls, minlength=(pos.max() + 1) * n_classes)
    return flat.reshape(-1, n_classes)


def _alpha_with_reps(counts: np.ndarray, n_bootstrap: int, seed: int):
    """Nominal alpha of the items in ``counts`` and its bootstrap replicates (items
    resampled through their profiles, as :mod:`consistency.metrics.summary` does)."""
    n_items, k = counts.shape
    t_pos, t_val = np.nonzero(counts)
    t_n = counts[t_pos, t_val]
    prof = build_profiles(
        t_pos.astype(np.int64), t_val.astype(np.int64), t_n.astype(np.int64), n_items, k
    )
    eng = AlphaEngine(prof, "nominal", np.arange(k, dtype=np.float64))
    freq = prof.freq.astype(np.float64)
    alpha, reason = eng.alpha(freq)
    reps = []
    if alpha is not None and freq.size:
        rng = np.random.default_rng([seed, 11])
        total = int(freq.sum())
        for _ in range(n_bootstrap):
            value, _ = eng.alpha(rng.multinomial(total, freq / total).astype(np.float64))
            if value is not None:
                reps.append(value)
    return alpha, reason, np.asarray(reps)


def _ci(reps: np.ndarray) -> list | None:
    if reps.size == 0:
        return None
    lo, hi = np.percentile(reps, [2.5, 97.5])
    return [drift._f(lo), drift._f(hi)]


# --------------------------------------------------------------------------- the checks


def _entry(check: dict, metric: str, *, slice_=None, labeler=None, **extra) -> dict:
    return {"metric": metric, "slice": slice_, "labeler": labeler, **extra, **check}


def compute_checks(
    items: pd.DataFrame,
    labels: pd.DataFrame,
    classes: list[str],
    labeler_names: dict[int, str],
    params: dict,
    *,
    min_n: int,
    min_effect: float,
    gold: dict | None = None,
    progress=lambda f: None,
) -> tuple[list[dict], dict]:
    """Every check of a run (before :func:`drift.decide`) and the per-labeler weekly
    figures. Vectorised: each metric is one pass of numpy/pandas over the columns."""
    win = Windows(params)
    slices = params["slices"]
    n_boot, seed = params["n_bootstrap"], params["seed"]
    checks: list[dict] = []
    ib, ic = win.masks(items["t"])
    iweek = win.week_of(items["t"])

    def slice_groups(key: str):
        col = items[f"slice:{key}"]
        counts = col[ib | ic].value_counts()
        return [str(v) for v in counts.index[:MAX_SLICE_VALUES]]

    # -- input metrics: image statistics overall and per slice value
    for metric in NUMERIC_METRICS:
        values = items[metric].to_numpy(dtype=np.float64)
        if not np.isfinite(values).any():
            continue
        groups = [(None, np.ones(len(items), dtype=bool))]
        for key in slices:
            col = items[f"slice:{key}"].to_numpy(dtype=object)
            groups += [({"key": key, "value": v}, col == v) for v in slice_groups(key)]
        for slice_, sel in groups:
            b, c = values[sel & ib], values[sel & ic]
            check = drift.numeric_check(b, c, min_n=min_n)
            check["series"] = _numeric_series(values[sel], iweek[sel], b, min_effect, win)
            checks.append(_entry(check, metric, slice_=slice_))
    progress(0.25)

    # -- missing metadata, per common key present anywhere
    for key in COMMON_KEYS:
        has = items[f"has:{key}"].to_numpy(dtype=bool)
        if not has.any():
            continue

        def split(mask, has=has):
            return {"missing": int((~has[mask]).sum()), "present": int(has[mask].sum())}

        check = drift.categorical_check(split(ib), split(ic), min_n=min_n, unit="items")
        check["series"] = _proportion_series(~has, iweek, _share(~has[ib]), min_effect, win)
        checks.append(_entry(check, "missing_metadata", field=key))

    # -- volume: items per day overall (with items per source batch) and per slice value
    days_b = (win.b1 - win.b0).total_seconds() / 86400
    days_c = (win.c1 - win.c0).total_seconds() / 86400
    check = drift.rate_check(int(ib.sum()), days_b, int(ic.sum()), days_c, min_n=min_n)
    batches = items["source_batch"].fillna(-1).astype(np.int64)
    for side, mask in (("baseline", ib), ("current", ic)):
        by = batches[mask].value_counts().head(20)
        check[side]["by_source_batch"] = {
            ("none" if k < 0 else str(k)): int(v) for k, v in by.items()
        }
    counts_w = np.bincount(iweek[iweek >= 0], minlength=len(win.weeks))
    base_rate = check["baseline"]["per_day"]
    check["series"] = {
        "figure": "items_per_day",
        "points": [
            {"week": lab, "n": int(counts_w[w]), "value": drift._f(counts_w[w] / 7)}
            for w, lab in enumerate(win.week_labels())
        ],
        "alarm": {
            "low": drift._f(base_rate * (1 - min_effect)) if base_rate else None,
            "high": drift._f(base_rate * (1 + min_effect)) if base_rate else None,
        },
    }
    check["series"]["since"] = _since(
        check["series"]["points"],
        check["series"]["alarm"]["low"],
        check["series"]["alarm"]["high"],
        win,
    )
    checks.append(_entry(check, "volume"))
    for key in slices:
        col = items[f"slice:{key}"].fillna("(none)")
        codes, uniques = pd.factorize(col)
        b = col[ib].value_counts().to_dict()
        c = col[ic].value_counts().to_dict()
        check = drift.categorical_check(b, c, min_n=min_n, unit="items")
        base_counts = np.bincount(codes[ib], minlength=len(uniques))
        check["series"] = _distribution_series(
            codes, iweek, base_counts, len(uniques), min_effect, win
        )
        checks.append(_entry(check, "volume", slice_={"key": key, "value": None}))
    progress(0.4)

    if labels.empty or not classes:
        return checks, {"labelers": [], "weeks": win.week_labels()}
    k = len(classes)
    lb, lc = win.masks(labels["t"])
    lweek = win.week_of(labels["t"])
    cls = labels["cls"].to_numpy(dtype=np.int64)
    item_ids = labels["item"].to_numpy(dtype=np.int64)

    def distribution_check(sel, slice_=None, labeler=None, metric="label_distribution"):
        # ``sel``: a boolean mask over the labels, or the positions of the labels
        idx = np.flatnonzero(sel) if sel.dtype == bool else sel
        ib_, ic_ = idx[lb[idx]], idx[lc[idx]]
        b = np.bincount(cls[ib_], minlength=k)
        c = np.bincount(cls[ic_], minlength=k)
        # the labels of one item are not independent observations: count the items
        n_items = (np.unique(item_ids[ib_]).size, np.unique(item_ids[ic_]).size)
        check = drift.categorical_check(
            dict(zip(classes, b.tolist(), strict=True)),
            dict(zip(classes, c.tolist(), strict=True)),
            min_n=min_n,
            unit="labels",
            n_clusters=n_items,
        )
        check["series"] = _distribution_series(cls[idx], lweek[idx], b, k, min_effect, win)
        checks.append(_entry(check, metric, slice_=slice_, labeler=labeler))

    # -- label distribution overall and per slice value (the label's item's slice)
    everything = np.ones(len(labels), dtype=bool)
    distribution_check(everything)
    # items are sorted by id: each label's item row by binary search
    item_row = np.searchsorted(items["id"].to_numpy(dtype=np.int64), item_ids)
    for key in slices:
        col = items[f"slice:{key}"].to_numpy(dtype=object)[item_row]
        for v in slice_groups(key):
            distribution_check(col == v, slice_={"key": key, "value": v})
    progress(0.55)

    # -- agreement in each window: alpha and AC1 among the labels made in it
    for metric in ("krippendorff_alpha", "gwet_ac1"):
        figures = {}
        for side, mask in (("baseline", lb), ("current", lc)):
            counts = _counts(item_ids[mask], cls[mask], k)
            n_pairable = int((counts.sum(axis=1) >= 2).sum())
            if metric == "krippendorff_alpha":
                value, reason, reps = _alpha_with_reps(counts, n_boot, seed)
            else:
                res = gwet_ac1(counts)
                value, reason = res.value, res.reason
                reps = drift.gwet_ac1_replicates(counts, n_bootstrap=n_boot, seed=seed)
            figures[side] = (value, reason, reps, n_pairable)
        (bv, br, breps, bn), (cv, cr, creps, cn) = figures["baseline"], figures["current"]
        reasons = {}
        if bv is None or cv is None:
            reasons["value"] = "; ".join(
                f"{side}: {r}" for side, r in (("baseline", br), ("current", cr)) if r
            )
        check = drift.agreement_check(
            bv, breps, cv, creps,
            n_baseline=bn, n_current=cn, min_n=min_n, unit="items with two labels",
            baseline_extra={"ci": _ci(breps)}, current_extra={"ci": _ci(creps)},
            reasons=reasons,
        )  # fmt: skip
        points = []
        for w, lab in enumerate(win.week_labels()):
            sel = lweek == w
            counts = _counts(item_ids[sel], cls[sel], k)
            if metric == "gwet_ac1":
                value = gwet_ac1(counts).value if counts.size else None
            else:
                value = _alpha_with_reps(counts, 0, seed)[0] if counts.size else None
            points.append(
                {"week": lab, "n": int((counts.sum(axis=1) >= 2).sum()), "value": drift._f(value)}
            )
        low = drift._f(bv - min_effect) if bv is not None else None
        check["series"] = {
            "figure": "value",
            "points": points,
            "alarm": {"low": low, "high": None},
            "since": _since(points, low, None, win),
        }
        checks.append(_entry(check, metric))
    progress(0.7)

    # -- each labeler: agreement with the others' majority, and label distribution
    all_counts_items, pos = np.unique(item_ids, return_inverse=True)
    counts = np.bincount(pos * k + cls, minlength=all_counts_items.size * k).reshape(-1, k)
    others = counts[pos].copy()
    others[np.arange(len(cls)), cls] -= 1
    top = others.max(axis=1)
    unique_top = (others == top[:, None]).sum(axis=1) == 1
    eligible = (others.sum(axis=1) >= 2) & unique_top
    agrees = others.argmax(axis=1) == cls
    lab_ids = labels["labeler"].to_numpy(dtype=np.int64)
    rng = np.random.default_rng([seed, 12])
    gold = gold if gold is not None else gold_marks_none(len(labels))
    per_labeler = []
    # the labels sorted by labeler once: each labeler's labels are one contiguous run
    order = np.argsort(lab_ids, kind="stable")
    ids, starts, sizes = np.unique(lab_ids[order], return_index=True, return_counts=True)
    segment = {int(i): order[a : a + n] for i, a, n in zip(ids, starts, sizes, strict=True)}
    for lab in sorted(segment, key=lambda i: labeler_names.get(i, str(i))):
        name = labeler_names.get(lab, str(lab))
        mine = segment[lab]
        elig = mine[eligible[mine]]
        eb, ec = elig[lb[elig]], elig[lc[elig]]
        kb, nb = int(agrees[eb].sum()), int(eb.size)
        kc, nc = int(agrees[ec].sum()), int(ec.size)
        vb, vc = (kb / nb if nb else None), (kc / nc if nc else None)
        reasons = {} if (nb and nc) else {"value": "no label where the others have a majority"}
        check = drift.agreement_check(
            vb, drift.bootstrap_proportion(kb, nb, n_bootstrap=n_boot, rng=rng),
            vc, drift.bootstrap_proportion(kc, nc, n_bootstrap=n_boot, rng=rng),
            n_baseline=nb, n_current=nc, min_n=min_n, unit="labels", reasons=reasons,
        )  # fmt: skip
        check["series"] = _proportion_series(agrees[elig], lweek[elig], vb, min_effect, win)
        checks.append(_entry(check, "labeler_agreement", labeler=name))
        distribution_check(mine, labeler=name, metric="labeler_label_distribution")
        per_labeler.append(
            {
                "labeler": name,
                "weeks": _labeler_weeks(mine, elig, agrees, gold, lweek, win),
            }
        )
    progress(0.85)
    return checks, {"labelers": per_labeler, "weeks": win.week_labels()}


def gold_marks_none(n: int) -> dict:
    """No label scored against ground truth."""
    return {"has": np.zeros(n, dtype=bool), "correct": np.zeros(n, dtype=bool)}


def _share(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if mask.size else None


def gold_marks(project: Project, labels: pd.DataFrame, classes: list[str]) -> dict:
    """Per label (in ``labels`` order): scored against ground truth (``has``) and right
    (``correct``), boolean arrays. The gold-carrying labeler's own label on its item
    (``GoldLabel.labeler``) is not scored: it *is* the ground truth."""
    none = {
        "has": np.zeros(len(labels), dtype=bool),
        "correct": np.zeros(len(labels), dtype=bool),
    }
    mapping = effective_class_map(project)
    code = {key: i for i, key in enumerate(classes)}
    keys = dict(LabelClass.objects.filter(project=project).values_list("id", "key"))
    gold = {}
    for item_id, class_id, gold_labeler in GoldLabel.objects.filter(
        item__project=project, label_class__isnull=False
    ).values_list("item_id", "label_class_id", "labeler_id"):
        root = mapping.get(class_id, class_id)
        if keys.get(root) in code:
            gold[item_id] = (code[keys[root]], gold_labeler)
    if not gold or labels.empty:
        return none
    g = pd.DataFrame.from_dict(gold, orient="index", columns=["gcls", "glab"])
    gcls = labels["item"].map(g["gcls"])
    glab = labels["item"].map(g["glab"])
    has = gcls.notna().to_numpy() & (glab.to_numpy() != labels["labeler"].to_numpy())
    correct = has & (gcls.fillna(-1).to_numpy() == labels["cls"].to_numpy())
    return {"has": has, "correct": correct}


def _labeler_weeks(mine, elig, agrees, gold, lweek, win: Windows) -> list[dict]:
    """One labeler's figures per week. ``mine``: positions of the labeler's labels;
    ``elig``: those where the others have a majority."""
    n_weeks = len(win.weeks)

    def per_week(idx, weights=None):
        w = lweek[idx]
        ok = w >= 0
        return np.bincount(
            w[ok], weights=None if weights is None else weights[idx][ok], minlength=n_weeks
        )

    scored = mine[gold["has"][mine]]
    n_labels, n_agree = per_week(mine), per_week(elig)
    agree = per_week(elig, agrees.astype(np.float64))
    n_gold, correct = per_week(scored), per_week(scored, gold["correct"].astype(np.float64))
    return [
        {
            "week": label,
            "n_labels": int(n_labels[w]),
            "n_agreement": int(n_agree[w]),
            "agreement": drift._f(agree[w] / n_agree[w]) if n_agree[w] else None,
            "n_gold": int(n_gold[w]),
            "gold_accuracy": drift._f(correct[w] / n_gold[w]) if n_gold[w] else None,
        }
        for w, label in enumerate(win.week_labels())
    ]


# --------------------------------------------------------------------------- execute


def _save(run: MonitoringRun, **changes) -> None:
    for name, value in changes.items():
        setattr(run, name, value)
    run.save(update_fields=list(changes))


def execute_monitoring_run(run_id: int) -> MonitoringRun:
    """Run the job: compute every check, correct and decide, raise drift flags, store.

    A run that already finished is returned as it is (a redelivered task)."""
    run = MonitoringRun.objects.select_related("project").get(pk=run_id)
    if run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
        return run
    project = run.project
    _save(run, status=RunStatus.RUNNING, started_at=timezone.now(), progress=0.0, error="")
    timings = {}
    try:
        t0 = time.perf_counter()
        items = load_items(project, run.params["slices"])
        labels, classes, names = (
            load_labels(project)
            if project.task_type != TaskType.TRANSCRIPTION
            else (pd.DataFrame(columns=["item", "labeler", "cls", "t"]), [], {})
        )
        gold = gold_marks(project, labels, classes)
        timings["load"] = round(time.perf_counter() - t0, 3)
        _save(run, progress=0.1)
        t0 = time.perf_counter()
        min_n = project.monitoring_min_window
        checks, labeler_weeks = compute_checks(
            items,
            labels,
            classes,
            names,
            run.params,
            min_n=min_n,
            min_effect=project.monitoring_min_effect,
            gold=gold,
            progress=lambda f: _save(run, progress=round(0.1 + 0.8 * f, 4)),
        )
        drift.decide(
            checks,
            q_threshold=project.monitoring_q_threshold,
            min_effect=project.monitoring_min_effect,
        )
        timings["checks"] = round(time.perf_counter() - t0, 3)
        # Drifted checks first, then undecided, then the rest; larger effects first.
        order = {True: 0, None: 1, False: 2}
        checks.sort(key=lambda c: (order[c["drifted"]], -(c["effect_size"] or 0.0)))
        mark_aliases(checks)
        pending = pending_image_stats(project.pk)
        results = {
            "checks": checks,
            "labelers": labeler_weeks["labelers"],
            "weeks": labeler_weeks["weeks"],
            "settings": {
                "min_window": min_n,
                "q_threshold": project.monitoring_q_threshold,
                "min_effect": project.monitoring_min_effect,
                "large_n": drift.LARGE_N,
            },
            "summary": {
                "n_checks": len(checks),
                "n_drifted": sum(1 for c in checks if c["drifted"]),
                "n_undecided": sum(1 for c in checks if c["drifted"] is None),
                "n_items": len(items),
                "n_labels": len(labels),
            },
            "reasons": (
                {"image_stats": f"{pending} items still wait for their image statistics"}
                if pending
                else {}
            ),
        }
        t0 = time.perf_counter()
        with transaction.atomic():
            flags = raise_drift_flags(run, checks)
            results["summary"]["n_flags_raised"] = len(flags)
            timings["flags"] = round(time.perf_counter() - t0, 3)
            _save(
                run,
                results=results,
                status=RunStatus.SUCCEEDED,
                progress=1.0,
                finished_at=timezone.now(),
                timings=timings,
            )
    except Exception as exc:
        logger.exception("monitoring run %s failed", run_id)
        MonitoringRun.objects.filter(pk=run_id).update(
            status=RunStatus.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:4000],
            finished_at=timezone.now(),
        )
        run.refresh_from_db()
    return run


def mark_aliases(checks: list[dict]) -> None:
    """Mark a slice check whose figures equal an earlier check's of the same metric (the
    same items: a camera and its line, serial number and settings) with ``same_as``: the
    earlier check's slice. Its verdict stands; it raises no flag of its own (the first
    one's evidence lists it), and the page folds it into the first one's card."""
    first: dict[str, dict] = {}
    for check in checks:
        if not check.get("slice") or check["slice"].get("value") is None:
            continue
        figures = json.dumps(
            [check["metric"], check["baseline"], check["current"], check["effect_size"]],
            sort_keys=True,
        )
        if figures in first:
            check["same_as"] = first[figures]["slice"]
        else:
            first[figures] = check


# --------------------------------------------------------------------------- flags


def drift_signature(check: dict) -> str:
    """What makes two drift flags "identical": the metric and its subject."""
    s = check.get("slice") or {}
    parts = [
        "drift",
        f"metric={check['metric']}",
        f"field={check.get('field') or ''}",
        f"slice={s.get('key') or ''}={'' if s.get('value') is None else s.get('value')}",
        f"labeler={check.get('labeler') or ''}",
    ]
    return "|".join(parts)


def _figure(side: dict) -> str:
    for name in ("mean", "value", "per_day"):
        if side.get(name) is not None:
            return f"{side[name]:.3g}"
    return f"n={side.get('n')}"


def _summary(check: dict) -> str:
    subject = ""
    if check.get("slice"):
        s = check["slice"]
        subject = (
            f" on {s['key']}={s['value']}" if s.get("value") is not None else f" by {s['key']}"
        )
    if check.get("labeler"):
        subject = f" for labeler {check['labeler']}"
    if check.get("field"):
        subject += f" ({check['field']})"
    since = (check.get("series") or {}).get("since")
    return (
        f"{check['metric'].replace('_', ' ')} drifted{subject}: "
        f"{_figure(check['baseline'])} → {_figure(check['current'])} "
        f"(effect {check['effect_size']:.3g}"
        + (f", q {check['q_value']:.2g}" if check.get("q_value") is not None else "")
        + ")"
        + (f", since the week of {since}" if since else "")
    )


def raise_drift_flags(run: MonitoringRun, checks: list[dict]) -> list[Flag]:
    """One open flag of kind ``drift`` per drifted check, unless an identical one (same
    signature) is already open. Returns the flags created."""
    project = run.project
    drifted = [c for c in checks if c.get("drifted")]
    open_sigs = set(
        Flag.objects.filter(
            project=project, kind=FlagKind.DRIFT, status=FlagStatus.OPEN
        ).values_list("evidence__signature", flat=True)
    )
    user_ids = dict(
        User.objects.filter(
            username__in=[c["labeler"] for c in drifted if c.get("labeler")]
        ).values_list("username", "id")
    )
    aliases: dict[str, list[dict]] = {}
    for check in drifted:
        if check.get("same_as"):
            aliases.setdefault(json.dumps(check["same_as"], sort_keys=True), []).append(
                check["slice"]
            )
    flags = []
    for check in drifted:
        if check.get("same_as"):
            continue
        sig = drift_signature(check)
        if sig in open_sigs:
            continue
        open_sigs.add(sig)
        s = check.get("slice") or {}
        evidence = {
            "signature": sig,
            "metric": check["metric"],
            "field": check.get("field"),
            "monitoring_run": run.pk,
            "test": check["test"],
            "statistic": check["statistic"],
            "p_value": check["p_value"],
            "q_value": check["q_value"],
            "effect_size": check["effect_size"],
            "baseline": {k: v for k, v in check["baseline"].items() if k != "reasons"},
            "current": {k: v for k, v in check["current"].items() if k != "reasons"},
            "windows": {"baseline": run.params["baseline"], "current": run.params["current"]},
            "since": (check.get("series") or {}).get("since"),
            "same_items_as": aliases.get(json.dumps(check.get("slice"), sort_keys=True), []),
        }
        flags.append(
            Flag(
                project=project,
                run=None,
                monitoring_run=run,
                kind=FlagKind.DRIFT,
                impact=round(float(check["effect_size"]) * check["current"].get("n", 0), 4),
                suggested_action="investigate",
                summary=_summary(check)[:300],
                evidence=evidence,
                labeler_id=user_ids.get(check.get("labeler")),
                slice_key=(s.get("key") or "")[:80],
                slice_value=("" if s.get("value") is None else str(s["value"]))[:200],
            )
        )
    Flag.objects.bulk_create(flags)
    events.drift_flags_raised(
        project_id=project.pk,
        monitoring_run_id=run.pk,
        after={
            "n_flags": len(flags),
            "n_drifted": len(drifted),
            "metrics": sorted({f.evidence["metric"] for f in flags}),
        },
    )
    return flags
