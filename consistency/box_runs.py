"""Agreement runs of detection projects: the adapter between the database and
:mod:`consistency.metrics.boxes`.

``detection_results(run, timings)`` reads the project's current box labels (classes
mapped through merges), ground-truth boxes and SME decisions, computes the results
document (DESIGN "Results": ``overall.box_f1``, ``box_mean_iou``, ``count_alpha`` with
intervals; ``per_labeler[].box_f1``; per class and per slice; HLP), stores each item's
consensus boxes as ``Consensus`` rows (``value_boxes``) and returns the consensus summary.
``box_flags(run)`` turns the run's findings into flag dicts for
:func:`consistency.flags.generate_flags`: labeling conventions (``box_convention``) and
the items whose box counts disagree most (``item_disagreement``).
"""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pandas as pd
from django.db import transaction

from consistency.class_map import class_map
from consistency.metrics import boxes as bx
from consistency.models import (
    AgreementRun,
    Consensus,
    ConsensusMethod,
    ConsensusStatus,
    Prediction,
)
from consistency.results import MAX_SLICE_VALUES, MISSING, _item_metadata, _labeler_names
from consistency.selectors import latest_finished_run
from labeling.models import (
    Annotation,
    GoldLabel,
    GoldSource,
    Guideline,
    Item,
    ItemDecision,
    LabelClass,
    Project,
)

# Bootstrap replicates per slice: enough for an interval, cheap enough for 60 slices.
SLICE_BOOTSTRAP = 200
MAX_DISAGREEMENT_ITEMS = 50
MAX_EXAMPLES = 6

GUIDELINE_ADVICE = {
    "group": "Draw one box per object. When objects touch or overlap, box each one "
    "separately; never one box around a group.",
    "loose": "Draw boxes tight: each edge touches the object's outermost visible pixel, "
    "with no margin around it.",
    "tight": "Draw the box around the whole object, including its faint or thin ends: "
    "each edge touches the object's outermost visible pixel.",
    "misses_small": "Box every object however small: state the smallest size that counts "
    "(for example 'any scratch visible at 100 % zoom').",
}
CONVENTION_SUMMARY = {
    "group": "{labeler} boxes groups of objects as one ({n} boxes each contain two or more "
    "boxes of another labeler)",
    "loose": "{labeler} draws larger boxes than the others (area x{ratio:.2f})",
    "tight": "{labeler} draws smaller boxes than the others (area x{ratio:.2f})",
    "misses_small": "{labeler} misses small objects (recall {recall:.2f} on the smallest "
    "third of boxes)",
}


# ------------------------------------------------------------------ loading


def key_map(project: Project) -> tuple[list[str], dict[str, str]]:
    """(root class keys in code order, ``{any class key: its root key}`` after merges)."""
    classes = class_map(project, "nominal")
    key_of = dict(LabelClass.objects.filter(project=project).values_list("key", "id"))
    roots = {k: classes.keys[classes.code_of[i]] for k, i in key_of.items() if i in classes.code_of}
    return classes.keys, roots


def _mapped(boxes: list, roots: dict[str, str]) -> tuple[list[dict], int]:
    """Boxes with their classes mapped to root keys, and how many had no known class."""
    out, dropped = [], 0
    for b in boxes or []:
        key = roots.get(b.get("class"))
        if key is None:
            dropped += 1
            continue
        out.append({**b, "class": key})
    return out, dropped


def load_box_labels(project: Project, labeler_ids: list[int] | None = None) -> dict:
    """The project's current box labels: ``{"labels": {item_id: {labeler_id: boxes}},
    "guideline": {item_id: most frequent guideline id}, "gold": {item_id: boxes},
    "gold_labeler": {item_id: labeler_id}, "classes": [...], "n_dropped": int}``."""
    classes, roots = key_map(project)
    labels: dict[int, dict[int, list]] = {}
    guidelines: dict[int, Counter] = {}
    dropped = 0
    rows = Annotation.objects.filter(
        project=project, is_current=True, value_boxes__isnull=False
    ).values_list("item_id", "labeler_id", "value_boxes", "guideline_id")
    wanted = set(labeler_ids) if labeler_ids is not None else None
    for item_id, labeler_id, boxes, guideline_id in rows.iterator(chunk_size=5000):
        if wanted is not None and labeler_id not in wanted:
            continue
        mapped, n = _mapped(boxes, roots)
        dropped += n
        labels.setdefault(item_id, {})[labeler_id] = mapped
        guidelines.setdefault(item_id, Counter())[guideline_id] += 1
    gold, gold_labeler = gold_boxes(project, roots)
    return {
        "labels": labels,
        "guideline": {i: c.most_common(1)[0][0] for i, c in guidelines.items()},
        "gold": gold,
        "gold_labeler": gold_labeler,
        "classes": classes,
        "roots": roots,
        "n_dropped": dropped,
    }


def gold_boxes(project: Project, roots: dict[str, str]) -> tuple[dict, dict]:
    """Ground-truth boxes (SME decisions are not ground truth): ``({item id: boxes},
    {item id: the labeler whose annotation carries them})``."""
    gold, gold_labeler = {}, {}
    for item_id, boxes, labeler_id in (
        GoldLabel.objects.filter(item__project=project, value_boxes__isnull=False)
        .exclude(source=GoldSource.SME)
        .values_list("item_id", "value_boxes", "labeler_id")
    ):
        gold[item_id], _ = _mapped(boxes, roots)
        if labeler_id is not None:
            gold_labeler[item_id] = labeler_id
    return gold, gold_labeler


def sme_box_decisions(project: Project) -> dict[int, list[dict]]:
    """``{item id: boxes}`` decided by an SME (``ItemDecision.value_boxes``)."""
    _, roots = key_map(project)
    return {
        item_id: _mapped(boxes, roots)[0]
        for item_id, boxes in ItemDecision.objects.filter(
            item__project=project, value_boxes__isnull=False
        ).values_list("item_id", "value_boxes")
    }


def final_boxes(project: Project, run: AgreementRun | None) -> dict[int, dict]:
    """``{item id: {"boxes", "source", "status", "support"}}``: an item's final boxes, by
    the one rule final labels follow (``consistency.selectors.final_labels``): its ground
    truth, else an SME decision, else the run's consensus boxes. ``source`` is
    ``ground_truth`` | ``sme`` | ``consensus``; ``status`` is the consensus status
    (``resolved`` for a decision, ``agreed`` for ground truth). Three queries."""
    out: dict[int, dict] = {}
    if run is not None:
        for item_id, boxes, status, support in Consensus.objects.filter(
            run=run, method=ConsensusMethod.MAJORITY, value_boxes__isnull=False
        ).values_list("item_id", "value_boxes", "status", "support"):
            out[item_id] = {
                "boxes": boxes,
                "source": "consensus",
                "status": status,
                "support": support,
            }
    for item_id, boxes in sme_box_decisions(project).items():
        out[item_id] = {
            "boxes": boxes,
            "source": "sme",
            "status": ConsensusStatus.RESOLVED,
            "support": None,
        }
    truth, _ = gold_boxes(project, key_map(project)[1])
    for item_id, boxes in truth.items():
        out[item_id] = {
            "boxes": boxes,
            "source": "ground_truth",
            "status": ConsensusStatus.AGREED,
            "support": None,
        }
    return out


# ------------------------------------------------------------------ results


def detection_results(run: AgreementRun, timings: dict) -> tuple[dict, dict]:
    """Results document and consensus summary of a detection project's run; stores the
    run's consensus rows. ``timings`` gains ``scan_s``, ``metrics_s``, ``slices_s`` and
    ``consensus_s`` (seconds)."""
    project, params = run.project, run.params
    t0 = time.perf_counter()
    labeler_ids = list(run.data_version.get("labeler_ids", []))
    data = load_box_labels(project, labeler_ids)
    labels = data["labels"]
    timings["scan_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    names = dict(zip(labeler_ids, _labeler_names(labeler_ids), strict=True))
    threshold = float(project.box_iou_threshold)
    agreement = bx.BoxAgreement(
        labels,
        classes=data["classes"],
        threshold=threshold,
        gold=data["gold"],
        gold_labeler=data["gold_labeler"],
    )
    n_boot, seed = params["n_bootstrap"], params["seed"]
    summary = agreement.summary(n_bootstrap=n_boot, seed=seed)
    hlp = summary.pop("hlp")
    overall = {**summary, **_classic_nulls(), "level": "nominal", "iou_threshold": threshold}
    overall["reasons"] = {**summary["reasons"], **_classic_nulls(reasons=True)}
    per_labeler = agreement.per_labeler(n_bootstrap=n_boot, seed=seed)
    for entry in per_labeler:
        entry["labeler_id"] = entry["labeler"]
        entry["labeler"] = names.get(entry["labeler"], f"user {entry['labeler']}")
    pairwise = agreement.pairwise()
    pairwise["labelers"] = [names.get(x, f"user {x}") for x in pairwise["labelers"]]
    timings["metrics_s"] = round(time.perf_counter() - t0, 3)

    t0 = time.perf_counter()
    slices = _slices(run, agreement, data, names, n_boot, seed)
    timings["slices_s"] = round(time.perf_counter() - t0, 3)
    hlp["definition"] = (
        "each labeler's box F1 (boxes matched one-to-one at IoU >= the project threshold; "
        "both empty = 1) against ground-truth boxes where the item has them (the "
        "ground-truth labeler left out), else against the other labelers' consensus boxes; "
        "mean over (item, labeler)"
    )
    hlp["per_slice"] = [
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
        if s["value"] is not None
    ]
    conventions = bx.box_conventions(
        agreement,
        [{**e, "labeler": e["labeler_id"]} for e in per_labeler],
        **_convention_thresholds(project),
    )
    for c in conventions:
        c["labeler_id"] = c["labeler"]
        c["labeler"] = names.get(c["labeler"], f"user {c['labeler']}")
    disagreement = [
        {**e, "counts": {names.get(k, f"user {k}"): v for k, v in e["counts"].items()}}
        for e in agreement.item_disagreement()[:MAX_DISAGREEMENT_ITEMS]
    ]
    results = {
        "overall": overall,
        "per_class": agreement.per_class(n_bootstrap=n_boot, seed=seed),
        "per_labeler": per_labeler,
        "pairwise": pairwise,
        "confusion": agreement.confusion(),
        "hlp": hlp,
        "slices": slices,
        "classes": [{"key": k, "name": k, "is_borderline": False} for k in data["classes"]],
        "merges": {k: v for k, v in data["roots"].items() if k != v},
        "labels_dropped": {
            "n": data["n_dropped"],
            "reason": "boxes whose class is not in the project (deleted classes)",
        },
        "task_type": project.task_type,
        "detection": {
            "iou_threshold": threshold,
            "quorum": "strict majority of the item's labelers",
            "conventions": conventions,
            "item_disagreement": disagreement,
            "size_edges": agreement.size_edges(),
            "definitions": {
                "box_f1": "mean over (item, pair of labelers) of 2 matches / (boxes of "
                "both); both empty = 1, one empty = 0",
                "box_mean_iou": "mean IoU of the matched pairs of boxes",
                "count_alpha": "Krippendorff's alpha (interval) of the number of boxes "
                "each labeler drew on an item",
                "class_alpha": "Krippendorff's alpha (nominal) of the classes of boxes "
                "drawn around the same object (clusters of two or more boxes)",
                "size_ratio": "a labeler's box area relative to the majority convention "
                "(1 = same; > 1 larger)",
                "intervals": "percentile bootstrap over items",
            },
        },
    }
    weights = {e["labeler_id"]: (e["box_f1"] or 0.0) for e in per_labeler}
    t0 = time.perf_counter()
    consensus = _store_consensus(run, labels, threshold, weights)
    timings["consensus_s"] = round(time.perf_counter() - t0, 3)
    return results, consensus


def _classic_nulls(reasons: bool = False) -> dict:
    why = "detection projects are measured on boxes: see box_f1, box_mean_iou, count_alpha"
    keys = (
        "krippendorff_alpha",
        "krippendorff_alpha_ci",
        "fleiss_kappa",
        "percent_agreement",
        "mean_pairwise_cohen_kappa",
    )
    return dict.fromkeys(keys, why) if reasons else dict.fromkeys(keys)


def _convention_thresholds(project: Project) -> dict:
    """Convention thresholds from ``project.flag_thresholds`` (``box_<name>``) over the
    defaults of :func:`consistency.metrics.boxes.box_conventions`."""
    names = (
        "min_group_boxes",
        "min_group_rate",
        "size_ratio_min",
        "min_size_matches",
        "small_recall_gap",
        "min_small_refs",
    )
    thresholds = project.flag_thresholds or {}
    out = {n: thresholds[f"box_{n}"] for n in names if thresholds.get(f"box_{n}") is not None}
    out["max_examples"] = MAX_EXAMPLES
    return out


def _slice_groups(run, key: str, data: dict, names: dict) -> dict[str, list[int]]:
    """``{slice value: item ids}`` for one slice key."""
    project = run.project
    item_ids = list(data["labels"])
    if key == "tag":
        groups: dict[str, list[int]] = {}
        for item_id, tag in Item.tags.through.objects.filter(
            item__project=project, item_id__in=item_ids
        ).values_list("item_id", "tag__name"):
            groups.setdefault(tag, []).append(item_id)
        tagged = {i for ids in groups.values() for i in ids}
        groups["(no tag)"] = [i for i in item_ids if i not in tagged]
        return groups
    if key == "labeler":
        groups = {}
        for item_id, per in data["labels"].items():
            for labeler_id in per:
                groups.setdefault(names.get(labeler_id, f"user {labeler_id}"), []).append(item_id)
        return groups
    if key == "guideline_version":
        versions = dict(Guideline.objects.filter(project=project).values_list("pk", "version"))
        groups = {}
        for item_id, gid in data["guideline"].items():
            label = f"v{versions[gid]}" if gid in versions else "(none)"
            groups.setdefault(label, []).append(item_id)
        return groups
    meta_key = "captured_at" if key == "captured_week" else key
    metadata = _item_metadata(project, [meta_key])
    values = metadata[meta_key].reindex(item_ids).fillna(MISSING)
    if key == "captured_week":
        when = pd.to_datetime(values.where(values != MISSING), utc=True, errors="coerce")
        iso = when.dt.isocalendar()
        week = iso["year"].astype("string") + "-W" + iso["week"].astype("string").str.zfill(2)
        values = week.fillna(MISSING).astype(str)
    groups = {}
    for item_id, value in values.items():
        groups.setdefault(str(value), []).append(int(item_id))
    return groups


def _slices(run, agreement: bx.BoxAgreement, data: dict, names: dict, n_boot, seed) -> list:
    position = {item: n for n, item in enumerate(agreement.items)}
    out = []
    for key in run.params["slices"]:
        groups = _slice_groups(run, key, data, names)
        ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        for value, ids in ranked[:MAX_SLICE_VALUES]:
            mask = np.zeros(len(agreement.items), dtype=bool)
            mask[[position[i] for i in ids if i in position]] = True
            if not mask.any():
                continue
            s = agreement.summary(
                item_mask=mask, n_bootstrap=min(n_boot, SLICE_BOOTSTRAP), seed=seed
            )
            hlp = s["hlp"]
            reasons = dict(s["reasons"])
            if hlp["value"] is None:
                reasons["hlp"] = hlp["reasons"].get("value", "no HLP on this slice")
            out.append(
                {
                    "key": key,
                    "value": value,
                    "n_items": s["n_items"],
                    "n_annotations": s["n_annotations"],
                    "box_f1": s["box_f1"],
                    "box_f1_ci": s["box_f1_ci"],
                    "box_mean_iou": s["box_mean_iou"],
                    "count_alpha": s["count_alpha"],
                    "count_alpha_ci": s["count_alpha_ci"],
                    "krippendorff_alpha": None,
                    "krippendorff_alpha_ci": None,
                    "percent_agreement": None,
                    "hlp": hlp["value"],
                    "hlp_ci": hlp["ci"],
                    "hlp_method": hlp["method"],
                    "hlp_n_items": hlp[hlp["method"]]["n_items"],
                    "reasons": {
                        **reasons,
                        "krippendorff_alpha": "detection: see box_f1 and count_alpha",
                    },
                }
            )
        if len(ranked) > MAX_SLICE_VALUES:
            out.append(
                {
                    "key": key,
                    "value": None,
                    "n_items": None,
                    "box_f1": None,
                    "hlp": None,
                    "hlp_ci": None,
                    "hlp_method": None,
                    "krippendorff_alpha": None,
                    "krippendorff_alpha_ci": None,
                    "reasons": {
                        "value": f"{len(ranked) - MAX_SLICE_VALUES} more values of {key!r} "
                        f"not shown (only the {MAX_SLICE_VALUES} largest)"
                    },
                }
            )
    return out


# ------------------------------------------------------------------ consensus


def _store_consensus(run: AgreementRun, labels: dict, threshold: float, weights: dict) -> dict:
    """Replace the run's consensus rows: one ``majority`` row per item with its consensus
    boxes (``value_boxes``), an SME decision on boxes taking its place (status
    ``resolved``). Returns the consensus summary of the results."""
    decisions = sme_box_decisions(run.project)
    rows = []
    counts: Counter = Counter()
    for item_id in sorted(labels):
        per = labels[item_id]
        found = bx.consensus_boxes(per, threshold=threshold, weights=weights)
        boxes, status = found["boxes"], found["status"]
        n = found["n_labelers"]
        if not n:
            support = None
        elif boxes:
            support = min(b["support"] for b in boxes) / n  # the least supported box
        else:
            support = sum(1 for v in per.values() if not v) / n  # "nothing there"
        if item_id in decisions:
            boxes, status, support = decisions[item_id], ConsensusStatus.RESOLVED, None
        counts[status] += 1
        f1s = [
            bx.pair_score(per[lab], boxes, threshold).f1 for lab in per
        ]  # how well each labeler's boxes fit the consensus
        rows.append(
            Consensus(
                run=run,
                item_id=item_id,
                method=ConsensusMethod.MAJORITY,
                value_boxes=boxes,
                support=support,
                confidence=float(np.mean(f1s)) if f1s else None,
                entropy=None,
                n_labels=n,
                status=status,
            )
        )
    with transaction.atomic():
        Consensus.objects.filter(run=run).delete()
        Consensus.objects.bulk_create(rows, batch_size=2000)
    return {
        "methods": {
            "majority": {
                "n_items": len(rows),
                **{s: int(counts.get(s, 0)) for s in ConsensusStatus.values},
                "definition": "boxes of all labelers clustered by IoU (one box per labeler "
                "per cluster); a cluster is kept when a strict majority of the item's "
                "labelers drew it; corners averaged, weighted by each labeler's box F1; "
                "class by majority; support = labelers who drew it. Disputed: a cluster "
                "below the quorum, or a class without a strict majority",
            }
        },
        "sme_overrides": len(decisions),
        "reasons": {
            "dawid_skene": "consensus boxes are clustered, not estimated by Dawid-Skene",
        },
    }


# ------------------------------------------------------------------ flags


def box_flags(run: AgreementRun) -> list[dict]:
    """Flag dicts (the shape of :mod:`consistency.detection`'s) from the run's results:
    one ``box_convention`` flag per labeler and convention, with example items and every
    labeler's boxes on them, and ``item_disagreement`` flags for the items whose box
    counts disagree most (a count range of two or more, or box F1 below 0.5)."""
    results = run.results or {}
    det = results.get("detection") or {}
    project = run.project
    wanted = {i for c in det.get("conventions", []) for i in c["items"]}
    wanted |= {e["item"] for e in det.get("item_disagreement", [])}
    items = {
        pk: (ext, url)
        for pk, ext, url in Item.objects.filter(project=project, pk__in=wanted).values_list(
            "pk", "external_id", "image_url"
        )
    }
    boxes_on: dict[int, dict[str, list]] = {}
    for item_id, username, value in Annotation.objects.filter(
        project=project, is_current=True, item_id__in=wanted, value_boxes__isnull=False
    ).values_list("item_id", "labeler__username", "value_boxes"):
        boxes_on.setdefault(item_id, {})[username] = value
    found = []
    for c in det.get("conventions", []):
        convention, stat = c["convention"], c["statistic"]
        summary = CONVENTION_SUMMARY[convention].format(
            labeler=c["labeler"],
            n=stat.get("n_group_boxes", 0),
            ratio=stat.get("size_ratio") or 1.0,
            recall=stat.get("recall_small") or 0.0,
        )
        impact = float(
            stat.get("n_group_boxes")
            or (abs(np.log(stat["size_ratio"])) * stat["n_matches"] if "size_ratio" in stat else 0)
            or stat.get("n_small", 0)
        )
        found.append(
            {
                "kind": "box_convention",
                "impact": round(impact, 4),
                "suggested_action": "publish_guideline",
                "summary": summary,
                "evidence": {
                    "convention": convention,
                    "statistic": stat,
                    "suggested_guideline": GUIDELINE_ADVICE[convention],
                    "examples": [_example(i, items, boxes_on) for i in c["items"] if i in items],
                },
                "items": [items[i][0] for i in c["items"] if i in items],
                "classes": [],
                "labeler": c["labeler"],
                "slice": None,
            }
        )
    for e in det.get("item_disagreement", []):
        if e["item"] not in items or (e["count_range"] < 2 and (e["box_f1"] or 0) >= 0.5):
            continue
        found.append(
            {
                "kind": "item_disagreement",
                "impact": round(1.0 - (e["box_f1"] or 0.0) + 0.1 * e["count_range"], 4),
                "suggested_action": "set_label",
                "summary": f"box counts {sorted(e['counts'].values())} from "
                f"{len(e['counts'])} labelers (box F1 {e['box_f1']:.2f})",
                "evidence": {
                    "counts": e["counts"],
                    "count_range": e["count_range"],
                    "box_f1": e["box_f1"],
                    "examples": [_example(e["item"], items, boxes_on)],
                },
                "items": [items[e["item"]][0]],
                "classes": [],
                "labeler": None,
                "slice": None,
            }
        )
    found.sort(key=lambda f: -f["impact"])
    return found


def _example(item_id: int, items: dict, boxes_on: dict) -> dict:
    """An example item with every labeler's boxes, to draw them overlaid."""
    ext, url = items[item_id]
    return {"item": ext, "image_url": url or None, "boxes": boxes_on.get(item_id, {})}


# ------------------------------------------------------------------ model runs

# Model boxes are scored at the IoU of COCO's AP50, whatever the project's threshold.
MODEL_IOU = 0.5
DEFAULT_SCORE_THRESHOLD = 0.5
MIN_SLICE_ITEMS = 5


def box_references(project: Project) -> tuple[dict, dict, AgreementRun | None]:
    """(``{item id: boxes}`` reference, ``{item id: "ground_truth" | "sme" |
    "consensus"}``, the agreement run read): the final boxes (:func:`final_boxes`) with
    the consensus of the latest finished run."""
    run = latest_finished_run(project)
    reference, source = {}, {}
    for item_id, final in final_boxes(project, run).items():
        reference[item_id], source[item_id] = final["boxes"], final["source"]
    return reference, source, run


def detection_error_analysis(model_run, slices: list) -> dict:
    """Error analysis of a detection model run, in the shape of the classification one.

    ``slices``: ``[(key, value, item ids)]`` (metadata values and tags). Per slice and
    overall: ``precision`` and ``recall`` of the boxes with ``score >=`` the run's
    ``params.score_threshold`` (default 0.5), ``ap50`` (COCO-style AP at IoU 0.5, all
    boxes), ``model_accuracy`` = the model's box F1 (mean per item, matched within
    classes at IoU 0.5) beside ``hlp`` (the labelers' box F1 on the same items, as the
    agreement run measures it). Items need a reference (ground truth, SME decision or
    consensus boxes); slices under ``MIN_SLICE_ITEMS`` scored items are null.
    """
    project = model_run.project
    _, roots = key_map(project)
    reference, source, run = box_references(project)
    predictions = {
        item_id: _mapped(boxes, roots)[0]
        for item_id, boxes in Prediction.objects.filter(
            model_run=model_run, value_boxes__isnull=False
        ).values_list("item_id", "value_boxes")
    }
    scored = sorted(i for i in predictions if i in reference)
    score_threshold = float(
        (model_run.params or {}).get("score_threshold", DEFAULT_SCORE_THRESHOLD)
    )
    data = load_box_labels(project)
    humans = bx.BoxAgreement(
        data["labels"],
        classes=data["classes"],
        threshold=float(project.box_iou_threshold),
        gold=data["gold"],
        gold_labeler=data["gold_labeler"],
    )
    position = {item: n for n, item in enumerate(humans.items)}

    def entry(key, value, items: list[int]) -> dict:
        items = [i for i in items if i in reference and i in predictions]
        reasons: dict[str, str] = {}
        out = {
            "key": key,
            "value": value,
            "n_items": len(items),
            "model_accuracy": None,
            "precision": None,
            "recall": None,
            "ap50": None,
            "hlp": None,
            "reasons": reasons,
        }
        if len(items) < (1 if key is None else MIN_SLICE_ITEMS):
            why = f"fewer than {MIN_SLICE_ITEMS} predicted items with reference boxes"
            for k in ("model_accuracy", "precision", "recall", "ap50"):
                reasons[k] = why if key is not None else "no predicted item with reference boxes"
        else:
            scores = bx.detection_scores(
                reference,
                predictions,
                iou_threshold=MODEL_IOU,
                score_threshold=score_threshold,
                items=items,
            )
            ap = bx.average_precision(reference, predictions, iou_threshold=MODEL_IOU, items=items)
            out.update(
                model_accuracy=scores["box_f1"],
                precision=scores["precision"],
                recall=scores["recall"],
                ap50=ap["ap"],
            )
            reasons.update(scores["reasons"])
            reasons.update(ap["reasons"])
            if key is None:
                out["ap50_per_class"] = ap["per_class"]
                out["n_pred_boxes"] = scores["n_pred_boxes"]
                out["n_gt_boxes"] = scores["n_gt_boxes"]
        mask = np.zeros(len(humans.items), dtype=bool)
        mask[[position[i] for i in items if i in position]] = True
        if mask.any():
            hlp = humans.summary(item_mask=mask, n_bootstrap=0)["hlp"]
            out["hlp"], out["hlp_method"] = hlp["value"], hlp["method"]
            if hlp["value"] is None:
                reasons["hlp"] = hlp["reasons"].get("value", "no HLP on these items")
        else:
            reasons["hlp"] = "no human labels on these items"
        return out

    overall = entry(None, None, scored)
    rows = [entry(key, value, list(ids)) for key, value, ids in slices]
    counts = Counter(source[i] for i in scored)
    why_not = "detection runs report precision, recall and AP50 per slice (see slices)"
    return {
        "reference": {
            "agreement_run": run.pk if run is not None else None,
            # As for classification: items whose reference is a final label, not a vote.
            "n_gold": counts.get("ground_truth", 0) + counts.get("sme", 0),
            "n_ground_truth": counts.get("ground_truth", 0),
            "n_sme": counts.get("sme", 0),
            "n_consensus": counts.get("consensus", 0),
            "n_without_reference": len(predictions) - len(scored),
        },
        "overall": overall,
        "slices": rows,
        "prioritisation": [],
        "tags": [],
        "per_class": [],
        "confusion": None,
        "model_as_labeler": None,
        "label_errors": [],
        "detection": {
            "iou_threshold": MODEL_IOU,
            "score_threshold": score_threshold,
            "definitions": {
                "precision": "matched predicted boxes (same class, IoU >= 0.5, score >= the "
                "score threshold) / predicted boxes",
                "recall": "matched reference boxes / reference boxes",
                "ap50": "COCO average precision at IoU 0.5 (101 recall points, mean over "
                "classes with reference boxes; equal to pycocotools)",
                "model_accuracy": "the model's box F1 per item (both empty = 1), mean",
                "hlp": "the labelers' box F1 on the same items (agreement-run definition)",
            },
        },
        "reasons": {
            "prioritisation": why_not,
            "tags": why_not,
            "per_class": "see overall.ap50_per_class",
            "confusion": "boxes of different classes never match",
            "model_as_labeler": "computed for classification projects",
        },
    }
