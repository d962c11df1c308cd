"""Agreement-run results: every metric, HLP and slice, from the run's statistics.

:func:`metrics_part` turns a run's (merged) :class:`~consistency.chunks.ChunkStats` into
the ``results`` document of the REST contract (without consensus); transcription
projects compare normalised transcripts instead (:func:`transcription_results`).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models.fields.json import KT

from consistency import normalization
from consistency.chunks import ChunkStats
from consistency.class_map import ClassMap
from consistency.metrics import (
    AgreementStats,
    item_value_counts,
    normalization_rules,
    normalize_transcript,
    slice_summary,
    slice_summary_from_counts,
    summarize,
    transcription_agreement,
)
from consistency.metrics.alpha import MAX_DENSE_VALUES
from consistency.metrics.icc import icc_complete_blocks
from consistency.run_params import SPECIAL_SLICES
from consistency.scan import scan_annotations
from consistency.selectors import current_normalization
from labeling.models import GoldLabel, GoldSource, Guideline, Item, Project, TaskType

User = get_user_model()

MAX_SLICE_VALUES = 60
MISSING = "(missing)"


def metrics_part(run, chunk: ChunkStats, classes: ClassMap) -> tuple[dict, dict]:
    """Every metric, HLP and the slices: (results without consensus, timings)."""
    project, params = run.project, run.params
    level = params["level"]
    stats = chunk.stats
    timings: dict = {}
    labeler_ids = list(run.data_version.get("labeler_ids", []))
    names = _labeler_names(labeler_ids)
    categorical = level in ("nominal", "ordinal")
    gold, gold_owner = _gold(project, level, classes)
    # The labeler whose annotation carries an item's ground truth is not measured
    # against it (labeler code = position in the run's sorted labeler ids).
    code_of_labeler = {uid: code for code, uid in enumerate(labeler_ids)}
    gold_labeler = {
        item: code_of_labeler[uid] for item, uid in gold_owner.items() if uid in code_of_labeler
    }
    if not categorical:
        # Gold values the labels never used cannot be coded into value points.
        points = stats.value_points
        gold = {k: v for k, v in gold.items() if np.isin(v, points)}
    t0 = time.perf_counter()
    empty = stats.n_annotations == 0
    if empty:
        results = _empty_results(level)
    else:
        results = summarize(
            stats,
            classes=classes.keys if categorical else None,
            labeler_names=names,
            gold=gold or None,
            gold_labeler=gold_labeler or None,
            n_bootstrap=params["n_bootstrap"],
            seed=params["seed"],
        )
    ids_by_name = dict(zip(names, labeler_ids, strict=True))
    for entry in results.get("per_labeler", []):
        entry["labeler_id"] = ids_by_name.get(entry["labeler"])
    if project.task_type == TaskType.RATING:
        results["overall"]["icc"] = _icc(stats, classes, names)
    timings["metrics_s"] = round(time.perf_counter() - t0, 3)

    t0 = time.perf_counter()
    slices = (
        []
        if empty
        else _slices(run, stats, chunk.guideline, gold or None, names, gold_labeler or None)
    )
    results["slices"] = slices
    results["hlp"]["per_slice"] = [
        {
            "key": s["key"],
            "value": s["value"],
            "n_items": s["n_items"],
            "hlp": s["hlp"],
            "hlp_ci": s["hlp_ci"],
            "method": s["hlp_method"],
            "reasons": {k: v for k, v in s["reasons"].items() if k.startswith("hlp")},
        }
        for s in slices
    ]
    timings["slices_s"] = round(time.perf_counter() - t0, 3)
    results["classes"] = [
        {"key": k, "name": n, "is_borderline": bool(b)}
        for k, n, b in zip(classes.keys, classes.names, classes.borderline, strict=True)
    ]
    results["merges"] = classes.merges
    results["labels_dropped"] = {
        "n": chunk.n_dropped,
        "reason": "labels without a value usable at this level (no class, or no number)",
    }
    results["task_type"] = project.task_type
    return results, timings


def _icc(stats: AgreementStats, classes: ClassMap, names: list[str]) -> dict:
    """``results.overall.icc`` of a rating project: ICC(2,1) and ICC(3,1) on the largest
    complete block (items rated by one same set of labelers), null with a reason
    otherwise (:mod:`consistency.metrics.icc`). Ratings are the labels' numbers (the
    class value, else its rank, on ordinal/nominal runs)."""
    out = {
        "icc2_1": None,
        "icc3_1": None,
        "n_items": 0,
        "n_raters": 0,
        "raters": [],
        "definition": (
            "Shrout & Fleiss (1979) from the two-way ANOVA of the largest block of items "
            "rated by the same labelers: ICC(2,1) absolute agreement, labelers random; "
            "ICC(3,1) consistency, these labelers fixed"
        ),
        "reasons": {},
    }
    if stats.categorical:
        values = np.asarray(classes.metric_value, dtype=np.float64)[stats.value]
    else:
        values = stats.value_points[stats.value]
    keep = np.isfinite(values)
    if not keep.any():
        out["reasons"]["icc2_1"] = out["reasons"]["icc3_1"] = "no label has a numeric value"
        return out
    blocks = icc_complete_blocks(stats.item[keep], stats.labeler[keep], values[keep])
    res = blocks.result
    out.update(
        {
            "icc2_1": res.icc2_1,
            "icc3_1": res.icc3_1,
            "n_items": res.n_items if res.icc2_1 is not None else 0,
            "n_raters": res.n_raters if res.icc2_1 is not None else 0,
            "raters": [names[r] for r in blocks.raters] if res.icc2_1 is not None else [],
            "n_items_rated": blocks.n_items_rated,
            "n_blocks": blocks.n_blocks,
        }
    )
    if res.icc2_1 is None:
        out["reasons"]["icc2_1"] = out["reasons"]["icc3_1"] = res.reason
    elif res.n_items < blocks.n_items_rated:
        out["reasons"]["n_items"] = (
            f"{blocks.n_items_rated - res.n_items} rated items lie outside the largest "
            f"complete block ({blocks.n_blocks} distinct labeler sets): ICC(2,1)/(3,1) need "
            "one set of labelers for every item"
        )
    return out


def _labeler_names(labeler_ids: Sequence[int]) -> list[str]:
    names = dict(User.objects.filter(pk__in=list(labeler_ids)).values_list("pk", "username"))
    return [names.get(i, f"user {i}") for i in labeler_ids]


def _gold(project: Project, level: str, classes: ClassMap) -> tuple[dict, dict]:
    """Ground truth as ``({item id: class code or value}, {item id: labeler user id})``.

    SME decisions (``source == sme``) are not ground truth: they are made on the items
    humans find hard, so measuring humans against them is biased by construction. The
    second dict names the labeler whose annotation carries the ground truth, when known.
    """
    rows = (
        GoldLabel.objects.filter(item__project=project)
        .exclude(source=GoldSource.SME)
        .values_list("item_id", "label_class_id", "value_number", "labeler_id")
    )
    gold = {}
    owner = {int(i): int(u) for i, _, _, u in rows if u is not None}
    for item_id, class_id, number, _ in rows:
        if level in ("nominal", "ordinal"):
            code = classes.code_of.get(class_id) if class_id is not None else None
            if code is not None:
                gold[int(item_id)] = code
        else:
            value = number
            if value is None and class_id is not None and class_id in classes.code_of:
                value = classes.metric_value[classes.code_of[class_id]]
            if value is not None and math.isfinite(value):
                gold[int(item_id)] = float(value)
    return gold, owner


def _empty_results(level: str) -> dict:
    why = "the project has no current annotations"
    return {
        "overall": {
            "krippendorff_alpha": None,
            "krippendorff_alpha_ci": None,
            "fleiss_kappa": None,
            "percent_agreement": None,
            "mean_pairwise_cohen_kappa": None,
            "n_items": 0,
            "n_annotations": 0,
            "n_labelers": 0,
            "level": level,
            "reasons": dict.fromkeys(
                (
                    "krippendorff_alpha",
                    "krippendorff_alpha_ci",
                    "fleiss_kappa",
                    "percent_agreement",
                    "mean_pairwise_cohen_kappa",
                ),
                why,
            ),
        },
        "per_class": [],
        "per_labeler": [],
        "pairwise": {"labelers": [], "cohen_kappa": [], "n_shared": [], "reasons": {}},
        "confusion": {"classes": [], "counts": [], "reasons": {"counts": why}},
        "hlp": {"value": None, "method": "pairwise", "ci": None, "reasons": {"value": why}},
        "reasons": {},
    }


def _item_metadata(project: Project, keys: Sequence[str], *, compact: bool = False) -> pd.DataFrame:
    """Per item id (index): the metadata values of ``keys`` as text, in one query.

    Values are extracted by the database (JSON key transforms); ``(missing)`` where absent.
    ``compact`` (PostgreSQL): the same query streamed by ``COPY`` and parsed by pandas into
    categorical columns (one small code per item instead of a Python tuple and strings
    per item: ~600 MB at 2M items otherwise); the values are the same strings.
    """
    if not keys:
        return pd.DataFrame()
    names = [f"k{i}" for i in range(len(keys))]
    rows = (
        Item.objects.filter(project=project)
        .annotate(**{n: KT(f"metadata__{k}") for n, k in zip(names, keys, strict=True)})
        .values_list("id", *names)
    )
    if compact and connection.vendor == "postgresql":
        return _item_metadata_copy(rows, list(keys))
    frame = pd.DataFrame.from_records(list(rows.iterator(chunk_size=20_000)), columns=["id", *keys])
    return frame.set_index("id").fillna(MISSING).astype(str)


def _item_metadata_copy(rows, keys: list[str]) -> pd.DataFrame:
    sql, params = rows.query.sql_with_params()
    buffer = io.BytesIO()
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg 3 (client-side binding) cursor under Django's
        query = raw.mogrify(sql, params)
        with raw.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, NULL '\\N')") as copy:
            for block in copy:
                buffer.write(block)
    buffer.seek(0)
    if buffer.getbuffer().nbytes == 0:
        frame = pd.DataFrame({k: pd.Categorical([]) for k in keys})
        frame.index = pd.Index([], dtype=np.int64, name="id")
    else:
        frame = pd.read_csv(
            buffer,
            header=None,
            names=["id", *keys],
            dtype={"id": np.int64, **dict.fromkeys(keys, "category")},
            na_values=["\\N"],
            keep_default_na=False,
        ).set_index("id")
    for k in keys:
        col = frame[k]
        if MISSING not in col.cat.categories:
            col = col.cat.add_categories([MISSING])
        frame[k] = col.fillna(MISSING)
    return frame


def _item_groups(
    run, key: str, stats: AgreementStats, names: list[str], metadata: pd.DataFrame
) -> dict[str, np.ndarray]:
    """``{slice value: item ids}`` for an item-level slice key."""
    project = run.project
    item_ids = stats.item[np.r_[True, stats.item[1:] != stats.item[:-1]]]  # sorted by item
    if key == "tag":
        through = Item.tags.through
        rows = through.objects.filter(item__project=project).values_list("item_id", "tag__name")
        groups: dict[str, list] = {}
        tagged = set()
        for item_id, tag in rows:
            groups.setdefault(tag, []).append(item_id)
            tagged.add(item_id)
        out = {k: np.asarray(v, dtype=np.int64) for k, v in groups.items()}
        untagged = item_ids[~np.isin(item_ids, np.fromiter(tagged, dtype=np.int64))]
        out["(no tag)"] = untagged
        return out
    if key == "labeler":
        out = {}
        for code, name in enumerate(names):
            out[name] = np.unique(stats.item[stats.labeler == code])
        return out
    if key == "captured_week":
        raw = metadata["captured_at"].astype(object)
        when = pd.to_datetime(raw.where(raw != MISSING), utc=True, errors="coerce")
        iso = when.dt.isocalendar()
        week = iso["year"].astype("string") + "-W" + iso["week"].astype("string").str.zfill(2)
        values = week.fillna(MISSING).astype(str)
    else:
        values = metadata[key]
    groups_s = pd.Series(values.index.to_numpy(np.int64), index=values.to_numpy())
    return {str(v): g.to_numpy(np.int64) for v, g in groups_s.groupby(level=0)}


def _slice_entry(key: str, value: str, summary: dict) -> dict:
    reasons = dict(summary.get("reasons", {}))
    hlp = summary["hlp"]
    for k, v in hlp.get("reasons", {}).items():
        reasons[f"hlp_{k}" if k != "value" else "hlp"] = v
    if summary["krippendorff_alpha"] is not None and summary["krippendorff_alpha_ci"] is None:
        reasons.setdefault("krippendorff_alpha_ci", "no bootstrap requested (n_bootstrap=0)")
    return {
        "key": key,
        "value": value,
        "n_items": summary["n_items"],
        "n_annotations": summary["n_annotations"],
        "krippendorff_alpha": summary["krippendorff_alpha"],
        "krippendorff_alpha_ci": summary["krippendorff_alpha_ci"],
        "percent_agreement": summary["percent_agreement"],
        "gwet_ac1": summary["gwet_ac1"],
        "gwet_ac1_ci": summary["gwet_ac1_ci"],
        "gwet_ac2": summary["gwet_ac2"],
        "gwet_ac2_ci": summary["gwet_ac2_ci"],
        "hlp": hlp["value"],
        "hlp_ci": hlp["ci"],
        "hlp_method": hlp["method"],
        "hlp_n_items": hlp.get("n_items"),
        "reasons": reasons,
    }


def _slices(
    run, stats: AgreementStats, guideline: np.ndarray, gold, names, gold_labeler=None
) -> list[dict]:
    params = run.params
    n_boot, seed = params["n_bootstrap"], params["seed"]
    out: list[dict] = []
    size = int(stats.item.max()) + 1 if stats.item.size else 0
    meta_keys = [k for k in params["slices"] if k not in SPECIAL_SLICES]
    if "captured_week" in params["slices"]:
        meta_keys.append("captured_at")
    metadata = _item_metadata(run.project, meta_keys, compact=True)
    # Without gold every slice figure is a function of its items' value counts: counted
    # once, a slice costs its items (no copy of its labels per slice value).
    by_counts = not gold and stats.n_values <= MAX_DENSE_VALUES
    counted = item_value_counts(stats) if by_counts else None
    for key in params["slices"]:
        if key == "guideline_version":
            out += _guideline_slices(run, stats, guideline, gold, n_boot, seed, gold_labeler)
            continue
        groups = _item_groups(run, key, stats, names, metadata)
        ranked = sorted(groups.items(), key=lambda kv: (-kv[1].size, kv[0]))
        for value, ids in ranked[:MAX_SLICE_VALUES]:
            mask = np.zeros(size, dtype=bool)
            mask[ids[ids < size]] = True
            if counted is not None:
                item_ids, counts = counted
                summary = _summary_from_counts(stats, counts[mask[item_ids]], n_boot, seed)
            else:
                summary = slice_summary(
                    stats, mask, gold=gold, gold_labeler=gold_labeler, n_bootstrap=n_boot, seed=seed
                )
            if summary["n_items"] == 0:
                continue
            out.append(_slice_entry(key, value, summary))
        if len(ranked) > MAX_SLICE_VALUES:
            out.append(
                {
                    "key": key,
                    "value": None,
                    "n_items": None,
                    "krippendorff_alpha": None,
                    "krippendorff_alpha_ci": None,
                    "gwet_ac1": None,
                    "gwet_ac2": None,
                    "hlp": None,
                    "hlp_ci": None,
                    "hlp_method": None,
                    "reasons": {
                        "value": f"{len(ranked) - MAX_SLICE_VALUES} more values of {key!r} "
                        f"not shown (only the {MAX_SLICE_VALUES} largest)"
                    },
                }
            )
    return out


def _guideline_slices(run, stats, guideline, gold, n_boot, seed, gold_labeler) -> list[dict]:
    """Label-level slice: the labels made under each guideline version."""
    versions = dict(Guideline.objects.filter(project=run.project).values_list("pk", "version"))
    out = []
    by_counts = not gold and stats.n_values <= MAX_DENSE_VALUES
    for gid in np.unique(guideline):
        sel = guideline == gid
        label = f"v{versions[int(gid)]}" if int(gid) in versions else "(none)"
        if by_counts:
            counts = item_value_counts(stats, sel)[1]
            summary = _summary_from_counts(stats, counts, n_boot, seed)
        else:
            sub = AgreementStats.from_labels(
                stats.item[sel],
                stats.labeler[sel],
                stats.value[sel],
                level=stats.level,
                n_classes=stats.n_values if stats.categorical else None,
                value_points=None if stats.categorical else stats.value_points,
                n_labelers=stats.n_labelers,
            )
            mask = np.ones(int(sub.item.max()) + 1 if sub.item.size else 0, dtype=bool)
            summary = slice_summary(
                sub, mask, gold=gold, gold_labeler=gold_labeler, n_bootstrap=n_boot, seed=seed
            )
        entry = _slice_entry("guideline_version", label, summary)
        entry["definition"] = "labels made under this guideline version (label-level slice)"
        out.append(entry)
    out.sort(key=lambda e: (len(e["value"]), e["value"]))
    return out


def _summary_from_counts(stats: AgreementStats, counts: np.ndarray, n_boot: int, seed: int):
    return slice_summary_from_counts(
        counts,
        level=stats.level,
        value_points=None if stats.categorical else stats.value_points,
        n_bootstrap=n_boot,
        seed=seed,
    )


def _describe_rule(rule: dict) -> str:
    kind = "regex" if rule.get("regex") else "text"
    return f"{kind} {rule.get('find', '')!r} -> {rule.get('replace', '')!r}"


def transcription_results(run, timings: dict):
    """Transcripts: nominal agreement on normalised text, WER between labelers."""
    project, params = run.project, run.params
    t0 = time.perf_counter()
    cols = scan_annotations(project.pk, with_text=True)
    labeler_ids = np.asarray(run.data_version.get("labeler_ids", []), dtype=np.int64)
    timings["scan_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    keep = np.array([bool(t.strip()) for t in cols.text], dtype=bool)
    keep &= np.isin(cols.labeler, labeler_ids)
    texts = [t for t, k in zip(cols.text, keep, strict=True) if k]
    items = cols.item[keep]
    labs = np.searchsorted(labeler_ids, cols.labeler[keep])
    # The project's published standardisation rules first (e.g. "Umm" -> "Um"), then the
    # built-in normalisation (case, punctuation, white space).
    project_rules = current_normalization(project)
    texts = normalization.normalize_texts(texts, project_rules["rules"])
    normalised = [normalize_transcript(t) for t in texts]
    codes, uniques = pd.factorize(pd.Series(normalised, dtype=object), sort=True)
    order = np.lexsort((labs, items))
    stats = AgreementStats.from_labels(
        items[order],
        labs[order],
        codes[order],
        level="nominal",
        n_classes=len(uniques),
        n_labelers=int(labeler_ids.size),
    )
    names = _labeler_names(labeler_ids.tolist())
    results = summarize(
        stats,
        classes=[str(u) for u in uniques],
        labeler_names=names,
        n_bootstrap=params["n_bootstrap"],
        seed=params["seed"],
    )
    ids_by_name = dict(zip(names, labeler_ids.tolist(), strict=True))
    for entry in results["per_labeler"]:
        entry["labeler_id"] = ids_by_name.get(entry["labeler"])
    trans = transcription_agreement(items, texts)
    trans["rules"] = [
        *(
            f"project rule v{project_rules['version']}: {_describe_rule(r)}"
            for r in project_rules["rules"]
        ),
        *normalization_rules(),
    ]
    trans["project_rules_version"] = project_rules["version"]
    results["transcription"] = trans
    results["per_class"] = []
    results["confusion"] = {
        "classes": None,
        "counts": None,
        "reasons": {"counts": "transcripts have no classes: see transcription.mean_pairwise_wer"},
    }
    wer_hlp = trans["hlp"]
    results["hlp"] = {
        "value": wer_hlp["value"],
        "method": "wer",
        "ci": None,
        "definition": wer_hlp["definition"],
        "exact_match": results["overall"]["percent_agreement"],
        "normalization_rules": trans["rules"],
        "per_slice": [],
        "reasons": {
            "ci": "no bootstrap for word error rate",
            **(
                {"value": trans["reasons"]["mean_pairwise_wer"]} if wer_hlp["value"] is None else {}
            ),
        },
    }
    results["slices"] = []
    results["classes"] = []
    results["merges"] = {}
    results["task_type"] = project.task_type
    timings["metrics_s"] = round(time.perf_counter() - t0, 3)
    consensus = {
        "methods": {},
        "reasons": {"methods": "consensus for transcripts is not computed by this run"},
    }
    return results, consensus
