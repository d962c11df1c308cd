"""Web pages of the SME review queue: the ranked flags, one flag with its items and every
label, the decision form, and the transcription normalisation rules.

Plain POST forms (they work without JavaScript); ``static/concord/review.js`` adds the
keyboard. Views are thin: every write is a ``review.services`` function.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from consistency import pause_flags
from consistency.models import (
    Consensus,
    ConsensusMethod,
    Flag,
    FlagKind,
    FlagStatus,
)
from consistency.selectors import current_normalization_rules
from labeling import access, selectors
from labeling.access import REVIEW_ROLES, SME_ROLES, page_access
from labeling.models import GoldLabel, Item, ItemDecision, Project, TaskType
from review import selectors as review_selectors
from review import services as review_services
from review.models import ResolutionAction

KIND_ICONS = {
    FlagKind.ITEM_DISAGREEMENT: "◐",
    FlagKind.MERGE_CLASSES: "⇄",
    FlagKind.BORDERLINE: "≈",
    FlagKind.UNCLEAR_SLICE: "◫",
    FlagKind.LABELER: "☺",
    FlagKind.DRIFT: "↘",
    FlagKind.LABEL_ERROR: "⚑",
    FlagKind.BOX_CONVENTION: "▣",
}
# Colours of labelers' boxes on the overlay (colour-blind safe, Okabe-Ito).
BOX_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
ACTION_TEXT = {
    "set_label": "Set the final label",
    "mark_borderline": "Mark borderline",
    "add_borderline_class": "Add a borderline class, then mark borderline",
    "merge_classes": "Merge the classes",
    "check_input": "Check the input (camera / capture) or clarify the guideline",
    "publish_guideline": "Publish a clarified guideline",
    "retrain_labeler": "Retrain the labeler; send their items back",
    "relabel": "Send back for relabeling",
}


def _image_src(item: Item) -> str:
    if item.image:
        return reverse("item-image", args=[item.pk])
    return item.image_url


def _box_overlay(item: Item, labels: list[dict], consensus: Consensus | None) -> dict:
    """Every labeler's boxes (and the consensus, dashed) on the item, for an SVG overlay
    in image pixels: ``{width, height, src, stroke, dash, boxes: [...], legend: [...]}``."""
    boxes, legend = [], []
    for n, label in enumerate(sorted(labels, key=lambda x: x["labeler"])):
        colour = BOX_COLOURS[n % len(BOX_COLOURS)]
        value = label["value"] if isinstance(label["value"], list) else []
        legend.append({"labeler": label["labeler"], "color": colour, "n": len(value)})
        boxes += [{**b, "labeler": label["labeler"], "color": colour} for b in value]
    if consensus is not None and consensus.value_boxes is not None:
        boxes += [
            {**b, "labeler": "consensus", "color": "#111827", "consensus": True}
            for b in consensus.value_boxes
        ]
    width = item.width or max([b["x"] + b["w"] for b in boxes] + [100]) * 1.05
    height = item.height or max([b["y"] + b["h"] for b in boxes] + [100]) * 1.05
    # Zoom on the boxes (with a margin) so that small objects stay visible.
    view = [0.0, 0.0, float(width), float(height)]
    if boxes:
        x0, y0 = min(b["x"] for b in boxes), min(b["y"] for b in boxes)
        x1 = max(b["x"] + b["w"] for b in boxes)
        y1 = max(b["y"] + b["h"] for b in boxes)
        margin = 0.15 * max(x1 - x0, y1 - y0, 20.0)
        left, top = max(x0 - margin, 0.0), max(y0 - margin, 0.0)
        view = [left, top, min(x1 + margin, width) - left, min(y1 + margin, height) - top]
    extent = max(view[2], view[3])
    return {
        "external_id": item.external_id,
        "src": _image_src(item),
        "width": f"{width:.0f}",
        "height": f"{height:.0f}",
        "view_box": " ".join(f"{v:.1f}" for v in view),
        "stroke": f"{extent / 200:.2f}",
        "dash": f"{extent / 60:.1f}",
        "boxes": [{**b, **{k: f"{float(b[k]):.2f}" for k in ("x", "y", "w", "h")}} for b in boxes],
        "legend": legend,
    }


def _meta_text(value) -> str:
    if isinstance(value, dict):
        return " · ".join(f"{k} {_meta_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_meta_text(v) for v in value)
    return str(value)


def _kind_counts(project: Project, status: str) -> list[dict]:
    counts = {k: 0 for k in FlagKind.values}
    for kind in Flag.objects.filter(project=project, status=status).values_list("kind", flat=True):
        counts[kind] += 1
    return [
        {"kind": k, "label": FlagKind(k).label, "icon": KIND_ICONS[k], "n": n}
        for k, n in counts.items()
        if n
    ]


@page_access(REVIEW_ROLES)
def queue(request, project: Project, role: str):
    """The project's flags, ranked by impact; ``?kind=`` and ``?status=`` filter."""
    status = request.GET.get("status", FlagStatus.OPEN)
    status = status if status in FlagStatus.values else FlagStatus.OPEN
    kind = request.GET.get("kind") or None
    kind = kind if kind in FlagKind.values else None
    # Pauses made on the labeling page get their flag here at the latest.
    pause_flags.sync_pause_flags(project)
    flags = list(review_selectors.flag_queue(project, status=status, kind=kind)[:300])
    max_impact = max((f.impact for f in flags), default=0) or 1
    rows = []
    for rank, flag in enumerate(flags, start=1):
        items = sorted(flag.items.all(), key=lambda i: i.pk)
        rows.append(
            {
                "rank": rank,
                "flag": flag,
                "icon": KIND_ICONS.get(flag.kind, "•"),
                "classes": [c.key for c in flag.classes.all()],
                "n_items": len(items),
                "thumbs": [_image_src(i) for i in items[:4] if _image_src(i)],
                "impact_pct": round(100 * flag.impact / max_impact),
                "action_text": ACTION_TEXT.get(flag.suggested_action, flag.suggested_action),
            }
        )
    context = {
        "project": project,
        "role": role,
        "rows": rows,
        "status": status,
        "kind": kind,
        "kinds": _kind_counts(project, status),
        "n_open": Flag.objects.filter(project=project, status=FlagStatus.OPEN).count(),
        "statuses": FlagStatus.choices,
        "before_after": review_selectors.alpha_before_after(project),
        "history": review_selectors.agreement_history(project)[-8:],
        "can_resolve": role in SME_ROLES,
        "is_transcription": project.task_type == TaskType.TRANSCRIPTION,
    }
    return render(request, "review/queue.html", context)


def _evidence_rows(flag: Flag) -> list[tuple[str, str]]:
    """The headline numbers of a flag's evidence, as (label, value) text."""
    ev = flag.evidence or {}

    def pct(x):
        return "—" if x is None else f"{x:.0%}"

    rows: list[tuple[str, str]] = []
    if flag.kind == FlagKind.ITEM_DISAGREEMENT and "count_range" in ev:  # boxes
        counts = ev.get("counts") or {}
        rows += [
            ("Boxes per labeler", ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))),
            ("Box F1 between labelers", pct(ev.get("box_f1"))),
        ]
    elif flag.kind == FlagKind.ITEM_DISAGREEMENT:
        rows += [
            ("Majority share", pct(ev.get("majority_share"))),
            ("Entropy", f"{ev.get('entropy_bits', 0):.2f} bits"),
            ("Tie", "yes" if ev.get("tie") else "no"),
        ]
    elif flag.kind == FlagKind.MERGE_CLASSES:
        rows += [
            ("Confusion share", pct(ev.get("confusion_share"))),
            ("Items with both", str(ev.get("n_items_with_both", "—"))),
            ("Labelers confusing them", str(ev.get("n_labelers", "—"))),
            ("Top labeler's share", pct(ev.get("top_labeler_share"))),
            ("Symmetry", pct(ev.get("symmetry"))),
        ]
    elif flag.kind == FlagKind.BORDERLINE:
        rows += [
            ("Items", str(ev.get("n_items", "—"))),
            ("Mean minority share", pct(ev.get("mean_minority_share"))),
            ("Labelers involved", str(ev.get("n_labelers", "—"))),
        ]
    elif flag.kind == FlagKind.UNCLEAR_SLICE:
        s, r = ev.get("slice", {}), ev.get("rest", {})
        metric = (ev.get("metric") or "").replace("_", " ")
        ci = s.get("ci")
        rows += [
            (
                f"{metric} here",
                f"{s.get('value', 0):.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""),
            ),
            (f"{metric} elsewhere", f"{r.get('value', 0):.2f}"),
            ("Items in slice", str(s.get("n_items", "—"))),
            ("HLP here / elsewhere", f"{pct(s.get('hlp'))} / {pct(r.get('hlp'))}"),
        ]
        for name, v in (ev.get("item_properties") or {}).items():
            rows.append((name.replace("_", " "), f"{v['slice_mean']} vs {v['rest_mean']}"))
    elif flag.kind == FlagKind.LABELER:
        rows += [
            ("Agreement with consensus", pct(ev.get("agreement_with_consensus"))),
            ("Median of labelers", pct(ev.get("median_agreement"))),
            ("Robust z", "—" if ev.get("robust_z") is None else f"{ev['robust_z']:.1f}"),
            ("Decided labels", str(ev.get("n_decided", "—"))),
        ]
        for h in ev.get("habits") or []:
            rows.append(
                (
                    f"{h['consensus']} → {h['says']}",
                    f"{h['n']} of {h['of']} ({pct(h['rate'])}; others {pct(h['others_rate'])})",
                )
            )
        if ev.get("drift"):
            d = ev["drift"]
            rows.append(("Agreement early → late", f"{pct(d['early'])} → {pct(d['late'])}"))
    elif flag.kind == FlagKind.BOX_CONVENTION:
        stat = ev.get("statistic") or {}
        rows.append(("Convention", str(ev.get("convention", "—")).replace("_", " ")))
        if "size_ratio" in stat:
            ci = stat.get("size_ratio_ci") or [None, None]
            rows.append(("Box area vs others", f"x{stat['size_ratio']:.2f} [{ci[0]}, {ci[1]}]"))
            rows.append(("Matched boxes", str(stat.get("n_matches", "—"))))
        if "n_group_boxes" in stat:
            rows.append(
                ("Group boxes", f"{stat['n_group_boxes']} of {stat.get('n_boxes', '—')} boxes")
            )
            rows.append(("Others' rate (median)", pct(stat.get("median_rate_of_others"))))
        if "recall_small" in stat:
            rows.append(
                (
                    "Recall small / large",
                    f"{pct(stat['recall_small'])} / {pct(stat.get('recall_large'))}",
                )
            )
        rows.append(("Suggested guideline", ev.get("suggested_guideline", "—")))
    elif flag.kind == FlagKind.DRIFT:
        b, c = ev.get("baseline") or {}, ev.get("current") or {}

        def figure(side):
            for name in ("mean", "value", "per_day"):
                if side.get(name) is not None:
                    return f"{name.replace('_', ' ')} {side[name]:.4g} (n={side.get('n')})"
            return f"n={side.get('n')}"

        windows = ev.get("windows") or {}
        metric = (ev.get("metric") or "").replace("_", " ")
        field = f" ({ev['field']})" if ev.get("field") else ""
        test = f"{ev.get('test', '—')}; effect {ev.get('effect_size')}, q {ev.get('q_value')}"
        rows += [
            ("Metric", metric + field),
            ("Baseline", figure(b)),
            ("Current", figure(c)),
            ("Test", test),
            ("Since (week of)", ev.get("since") or "—"),
            ("Windows", " vs ".join(
                f"{w.get('start', '')[:10]} → {w.get('end', '')[:10]}"
                for w in (windows.get("baseline") or {}, windows.get("current") or {})
            )),
            ("Monitoring run", f"#{ev.get('monitoring_run', '—')}"),
        ]  # fmt: skip
    elif flag.kind == FlagKind.LABEL_ERROR:
        rows += [
            ("Model run", f"{ev.get('model_run_name', '')} (#{ev.get('model_run', '—')})"),
            ("Model predicts", f"{ev.get('predicted', '—')} ({pct(ev.get('confidence'))})"),
            ("Class threshold", pct(ev.get("threshold"))),
            ("Final label", f"{ev.get('final_label', '—')} ({ev.get('final_source', '—')})"),
            ("Human labels agreeing", pct(ev.get("human_agreement"))),
            ("Score", "—" if ev.get("score") is None else f"{ev['score']:.2f}"),
        ]
    return rows


@page_access(
    REVIEW_ROLES,
    scope=Flag.objects.select_related("labeler", "run").prefetch_related("classes"),
    url_kwarg="flag_id",
)
def flag_page(request, flag: Flag, role: str):
    """One flag: its items large, every label with labeler, guideline version and
    comment, the evidence, and the decision form."""
    project = flag.project
    items = list(flag.items.order_by("pk"))
    labels = review_selectors.item_labels(items)
    gold = {
        g.item_id: g
        for g in GoldLabel.objects.filter(item__in=items).select_related(
            "label_class", "created_by"
        )
    }
    decisions = {
        d.item_id: d
        for d in ItemDecision.objects.filter(item__in=items).select_related("label_class")
    }
    consensus: dict[int, Consensus] = {}
    for row in (
        Consensus.objects.filter(run_id=flag.run_id, item__in=items)
        .exclude(method=ConsensusMethod.SME)
        .select_related("label_class")
        .order_by("method")  # dawid_skene before majority: keep majority
    ):
        consensus[row.item_id] = row
    flagged_labelers = set(
        Flag.objects.filter(project=project, kind=FlagKind.LABELER, status=FlagStatus.OPEN)
        .exclude(labeler=None)
        .values_list("labeler__username", flat=True)
    )
    detection = project.task_type == TaskType.DETECTION
    item_rows = [
        {
            "item": i,
            "src": _image_src(i),
            "overlay": (
                _box_overlay(i, labels.get(i.pk, []), consensus.get(i.pk)) if detection else None
            ),
            "labels": [
                {
                    **label,
                    "flagged": label["labeler"] in flagged_labelers,
                    **(
                        {"value": f"{len(label['value'])} box(es)"}
                        if isinstance(label["value"], list)
                        else {}
                    ),
                }
                for label in labels.get(i.pk, [])
            ],
            "gold": gold.get(i.pk),
            "decision": decisions.get(i.pk),
            "conflict": bool(
                decisions.get(i.pk)
                and gold.get(i.pk)
                and decisions[i.pk].label_class_id != gold[i.pk].label_class_id
            ),
            "consensus": consensus.get(i.pk),
            "metadata": sorted((k, _meta_text(v)) for k, v in (i.metadata or {}).items()),
        }
        for i in items
    ]
    classes, borderline = selectors.class_buttons(project)
    prev_id, next_id = review_selectors.neighbours(flag)
    open_ids = list(
        Flag.objects.filter(project=project, status=FlagStatus.OPEN)
        .order_by("-impact", "id")
        .values_list("id", flat=True)
    )
    ev = flag.evidence or {}
    confusion = ev.get("confusion_vs_consensus")
    pick = ev.get("labelers_pick") or {}
    flag_classes = [c.key for c in flag.classes.all()]
    guideline = selectors.current_guideline(project)
    context = {
        "project": project,
        "role": role,
        "flag": flag,
        "icon": KIND_ICONS.get(flag.kind, "•"),
        "items": item_rows,
        "single": len(item_rows) == 1,
        # a final label is a decision about items: offered where the flag is about them
        # (boxes are decided over REST with a box list: the page has no box editor)
        "decides_items": not detection
        and flag.kind in (FlagKind.ITEM_DISAGREEMENT, FlagKind.BORDERLINE, FlagKind.LABEL_ERROR),
        "classes": classes,
        "borderline": borderline,
        "flag_classes": flag_classes,
        "merge_classes": [c for c in flag_classes if c != (borderline or {}).get("key")],
        "suggested_into": ev.get("suggested_into"),
        "evidence_rows": _evidence_rows(flag),
        "confusion": confusion,
        "confusion_rows": (
            list(zip(confusion["classes"], confusion["counts"], strict=True)) if confusion else []
        ),
        "pick": sorted(pick.items()),
        "pick_classes": flag_classes[:2],
        "prev_id": prev_id,
        "next_id": next_id,
        "position": open_ids.index(flag.pk) + 1 if flag.pk in open_ids else None,
        "n_open": len(open_ids),
        "can_resolve": role in SME_ROLES,
        "is_open": flag.status == FlagStatus.OPEN,
        "can_unmerge": (
            flag.kind == FlagKind.MERGE_CLASSES
            and project.classes.filter(key__in=flag_classes, merged_into__isnull=False).exists()
        ),
        "suggested_text": ACTION_TEXT.get(flag.suggested_action, flag.suggested_action),
        "guideline": guideline,
        # a convention flag proposes its clarification below the guideline in force
        "guideline_prefill": "\n\n".join(
            t
            for t in ((guideline.text if guideline else ""), ev.get("suggested_guideline", ""))
            if t
        ),
        "resolutions": flag.resolutions.select_related(
            "decided_by", "label_class", "into_class", "guideline"
        ).order_by("created_at", "id"),
        "before_after": review_selectors.alpha_before_after(project),
        "actions": ResolutionAction.choices,
    }
    return render(request, "review/flag.html", context)


@page_access(SME_ROLES, scope=Flag, url_kwarg="flag_id")
@require_POST
def resolve(request, flag: Flag, role: str):
    """Carry out the decision posted from the flag page, then go to the next open flag."""
    post = request.POST
    action = post.get("action", "")
    _, next_id = review_selectors.neighbours(flag)
    try:
        resolution = review_services.resolve_flag(
            flag=flag,
            actor=request.user,
            action=action,
            rationale=post.get("rationale", ""),
            label=post.get("label") or None,
            into=post.get("into") or None,
            items=post.getlist("items") or None,
            guideline_text=post.get("guideline_text") or None,
        )
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
        return redirect("review-flag", flag_id=flag.pk)
    what = dict(ResolutionAction.choices).get(action, action)
    detail = f" → {resolution.label_class.key}" if resolution.label_class_id else ""
    if resolution.into_class_id:
        detail = f" into {resolution.into_class.key}"
    n = resolution.items.count()
    messages.success(
        request,
        f"Flag #{flag.pk}: {what}{detail}" + (f" on {n} item{'s' if n != 1 else ''}" if n else ""),
    )
    if action == ResolutionAction.UNMERGE_CLASSES:
        return redirect("review-flag", flag_id=flag.pk)
    if next_id is not None:
        return redirect("review-flag", flag_id=next_id)
    return redirect("review-queue", project_id=flag.project_id)


@page_access(REVIEW_ROLES)
def normalization_page(request, project: Project, role: str):
    """Transcription rules: edit, preview (before → after, counts), publish a version."""
    if project.task_type != TaskType.TRANSCRIPTION:
        raise Http404("normalisation rules are for transcription projects")
    rules = current_normalization_rules(project)
    preview, error = None, None
    if request.method == "POST":
        rules = _rules_from_post(request.POST)
        try:
            if request.POST.get("publish"):
                access.check_role(role, SME_ROLES)  # previewing is open to viewers
                published = review_services.publish_normalization(
                    project=project,
                    rules=rules,
                    actor=request.user,
                    rationale=request.POST.get("rationale", ""),
                )
                messages.success(request, f"Published rule set v{published['version']}.")
                return redirect("review-normalization", project_id=project.pk)
            preview = review_services.preview_normalization(project, rules=rules)
        except ValidationError as exc:
            error = "; ".join(exc.messages)
    blank = {
        "find": "",
        "replace": "",
        "regex": False,
        "case_sensitive": False,
        "whole_word": False,
    }
    context = {
        "project": project,
        "role": role,
        "rules": [*rules, blank],
        "preview": preview,
        "error": error,
        "versions": review_selectors.normalization_versions(project),
        "can_publish": role in SME_ROLES,
    }
    return render(request, "review/normalization.html", context)


def _rules_from_post(post) -> list[dict]:
    finds = post.getlist("find")
    replaces = post.getlist("replace")
    out = []
    for i, find in enumerate(finds):
        if not find:
            continue
        out.append(
            {
                "find": find,
                "replace": replaces[i] if i < len(replaces) else "",
                "regex": post.get(f"regex-{i}") == "on",
                "case_sensitive": post.get(f"case-{i}") == "on",
                "whole_word": post.get(f"word-{i}") == "on",
            }
        )
    return out
