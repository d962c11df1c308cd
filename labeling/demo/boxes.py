"""The demo's detection project: phone screens with boxes around every defect.

Each image holds zero to three defect groups (a scratch, a *cluster* of two or three
near-parallel scratches, a dent, a crack), drawn by
:func:`labeling.demo.images.render_phone_defects`, which returns where it drew each one:
the truth boxes, in image pixels. Five labelers box the defects with planted conventions
that the box agreement jobs are expected to rediscover:

* ``labeler3`` draws **loose** boxes: each side pushed out by 15-30 % of the defect's
  size plus 2 px (boxes about 1.5-1.9 times as wide and high as the truth);
* ``labeler4`` boxes a **cluster** of scratches as **one** box (the union of the
  scratches), where the others draw one box per scratch;
* ``labeler1``, ``labeler2``, ``labeler6`` draw the truth with a little jitter (each edge
  moved by about a pixel).

A few items carry ground-truth boxes by the SME (the truth itself), and the guideline's
examples show theirs. Pure Python (no Django), deterministic for a seed like the rest of
the demo.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from .images import HEIGHT, PHONE_MODELS, WIDTH, DrawnDefect, render_phone_defects
from .types import DemoAnnotation, DemoClass, DemoGold, DemoGuideline, DemoItem, DemoProject

BOX_PROJECT_SLUG = "phone-screen-boxes"
BOX_CLASSES: tuple[DemoClass, ...] = (
    DemoClass("scratch", "Scratch", None, "A line cut into the screen, light or dark."),
    DemoClass("dent", "Dent", None, "A shaded, roughly elliptical depression."),
    DemoClass("crack", "Crack", None, "Jagged, branching fracture lines from one impact."),
)
BOX_LABELERS = ("labeler1", "labeler2", "labeler3", "labeler4", "labeler6")
LOOSE_LABELER = "labeler3"
GROUP_LABELER = "labeler4"
BOX_PERSONAS = {
    "labeler1": "boxes: tight, one per defect",
    "labeler2": "boxes: tight, one per defect",
    "labeler3": "boxes: loose (pads every box generously)",
    "labeler4": "boxes: one box around a cluster of scratches",
    "labeler6": "boxes: tight, one per defect",
}
# Layouts of an image's defect groups, each drawn in its own third of the screen, and
# their shares of the items (the rest: nothing there).
_LAYOUTS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("scratch",), 0.22),
    (("cluster",), 0.2),
    (("dent",), 0.1),
    (("crack",), 0.08),
    (("scratch", "dent"), 0.1),
    (("cluster", "crack"), 0.1),
    (("dent", "cluster"), 0.06),
)
_SEVERITY = {
    "scratch": (0.35, 0.85),
    "cluster": (0.35, 0.7),
    "dent": (0.3, 0.7),
    "crack": (0.2, 0.5),
}
_S_BOX_LAYOUT, _S_BOX_ITEM, _S_BOX_ASSIGN, _S_BOX_LABEL = range(21, 25)


def n_box_images(n_images: int) -> int:
    """How many box images a demo of ``n_images`` classification images gets: half, at
    least 48 -- enough items for the planted conventions to stand out of the jitter
    (with an eighth, a labeler drew a dozen boxes and the group convention came and went
    with the seed)."""
    return max(48, n_images // 2)


def _rng(seed: int, stream: int, *idx: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, *idx])


def _box(defect: DrawnDefect) -> dict:
    return {"class": defect.kind, "x": defect.x, "y": defect.y, "w": defect.w, "h": defect.h}


def _clip(left: float, top: float, right: float, bottom: float) -> dict:
    left, top = max(0.0, left), max(0.0, top)
    right, bottom = min(float(WIDTH), right), min(float(HEIGHT), bottom)
    right, bottom = max(right, left + 2), max(bottom, top + 2)
    return {
        "x": round(left, 2),
        "y": round(top, 2),
        "w": round(right - left, 2),
        "h": round(bottom - top, 2),
    }


def _jittered(box: dict, rng: np.random.Generator, sigma: float = 1.0) -> dict:
    left, top = box["x"] + rng.normal(0, sigma), box["y"] + rng.normal(0, sigma)
    right = box["x"] + box["w"] + rng.normal(0, sigma)
    bottom = box["y"] + box["h"] + rng.normal(0, sigma)
    return {"class": box["class"], **_clip(left, top, right, bottom)}


def _loose(box: dict, rng: np.random.Generator) -> dict:
    # Loose enough to stand out (area about 1.3-1.6x), tight enough to still match the
    # others' boxes at IoU 0.5, since the size ratio is measured on matched boxes.
    px = box["w"] * rng.uniform(0.08, 0.15) + 1
    py = box["h"] * rng.uniform(0.08, 0.15) + 1
    return {
        "class": box["class"],
        **_clip(box["x"] - px, box["y"] - py, box["x"] + box["w"] + px, box["y"] + box["h"] + py),
    }


def _grouped(defects: list[DrawnDefect]) -> list[dict]:
    """One box per defect, except one box around each cluster of scratches."""
    out, clusters = [], {}
    for d in defects:
        if d.cluster is None:
            out.append(_box(d))
        else:
            clusters.setdefault(d.cluster, []).append(d)
    for members in clusters.values():
        left = min(d.x for d in members)
        top = min(d.y for d in members)
        right = max(d.x + d.w for d in members)
        bottom = max(d.y + d.h for d in members)
        out.append({"class": "scratch", **_clip(left, top, right, bottom)})
    return out


def simulate_boxes(
    labeler: str, defects: list[DrawnDefect], rng: np.random.Generator
) -> list[dict]:
    """One labeler's boxes for an image whose drawn defects are ``defects``."""
    if labeler == GROUP_LABELER:
        return [_jittered(b, rng) for b in _grouped(defects)]
    if labeler == LOOSE_LABELER:
        return [_loose(_box(d), rng) for d in defects]
    return [_jittered(_box(d), rng) for d in defects]


def box_project(
    seed: int, n_images: int, *, cameras, factories, start: datetime, captured_at
) -> DemoProject:
    """The detection project of the demo (see the module docstring).

    ``cameras`` / ``factories``: the demo's cameras and factory lighting (for metadata
    and exposure); ``captured_at(rng, n)``: sorted capture times.
    """
    n = n_box_images(n_images)
    layout_rng = _rng(seed, _S_BOX_LAYOUT)
    layouts: list[tuple[str, ...]] = []
    for layout, share in _LAYOUTS:
        layouts += [layout] * int(n * share)
    layouts += [()] * (n - len(layouts))
    layout_rng.shuffle(layouts)
    camera_order = [cameras[int(i)] for i in layout_rng.integers(0, len(cameras), size=n)]
    times = captured_at(layout_rng, n)

    items: list[DemoItem] = []
    truths: list[list[DrawnDefect]] = []
    for i in range(n):
        rng = _rng(seed, _S_BOX_ITEM, i)
        camera = camera_order[i]
        groups = [(kind, float(rng.uniform(*_SEVERITY[kind]))) for kind in layouts[i]]
        model = PHONE_MODELS[i % len(PHONE_MODELS)]
        brightness = camera.brightness * factories[camera.factory].brightness
        png, drawn = render_phone_defects(
            rng,
            model=model,
            groups=groups,
            brightness=brightness * float(rng.uniform(0.97, 1.03)),
            white_balance=camera.rgb,
            glare=False,
        )
        boxes = [_box(d) for d in drawn]
        kinds = sorted({b["class"] for b in boxes})
        items.append(
            DemoItem(
                external_id=f"box-{i + 1:04d}",
                image_png=png,
                text=None,
                metadata={
                    "factory": camera.factory,
                    "line": camera.line,
                    "camera": camera.key,
                    "phone_model": model.name,
                    "captured_at": times[i].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "device": camera.serial,
                    "n_clusters": len({d.cluster for d in drawn if d.cluster is not None}),
                },
                tags=["cluster"] if any(d.cluster for d in drawn) else [],
                truth="+".join(kinds) or "nothing_there",
                severity=None,
                boxes=boxes,
            )
        )
        truths.append(drawn)

    annotations = []
    load = dict.fromkeys(BOX_LABELERS, 0)
    assign_rng = _rng(seed, _S_BOX_ASSIGN)
    for i, (item, drawn) in enumerate(zip(items, truths, strict=True)):
        tie = assign_rng.random(len(BOX_LABELERS))
        chosen = sorted(BOX_LABELERS, key=lambda u: (load[u], tie[BOX_LABELERS.index(u)]))[:3]
        for username in chosen:
            load[username] += 1
            rng = _rng(seed, _S_BOX_LABEL, i, BOX_LABELERS.index(username))
            value = simulate_boxes(username, drawn, rng)
            spent = (6 + 5 * len(value)) * float(rng.lognormal(0.0, 0.25))
            annotations.append(
                DemoAnnotation(
                    item=item.external_id,
                    labeler=username,
                    value=value,
                    time_spent_s=round(spent, 1),
                    guideline_version=1,
                    created_at=times[i] + timedelta(seconds=int(rng.integers(600, 86_400))),
                )
            )
    annotations.sort(key=lambda a: (a.created_at, a.item, a.labeler))

    # Ground truth for one item of each layout (the first one), by the SME.
    gold_at = start + timedelta(days=44, hours=10)
    gold, seen = [], set()
    for item, layout in zip(items, layouts, strict=True):
        if layout in seen:
            continue
        seen.add(layout)
        gold.append(
            DemoGold(item.external_id, item.boxes, "sme", gold_at + timedelta(minutes=len(gold)))
        )
    gold_items = {g.item for g in gold}
    examples = [
        it.external_id
        for it, layout in zip(items, layouts, strict=True)
        if it.external_id in gold_items and layout in (("scratch",), ("dent",), ())
    ]
    guideline = DemoGuideline(
        version=1,
        title="Phone screen boxes v1",
        text=(
            "# Phone screen boxes (v1)\n\n"
            "Draw a box around every scratch, dent and crack on the screen, and choose its "
            "class.\n\n"
            "- Boxes follow the defect: from its first to its last visible pixel.\n"
            "- A clean screen is an answer too: press **N** (nothing there).\n"
        ),
        examples=examples,
        published_at=start - timedelta(days=3),
    )
    return DemoProject(
        name="Phone screen boxes",
        slug=BOX_PROJECT_SLUG,
        task_type="detection",
        level="nominal",
        overlap=3,
        description=(
            "Where is the defect? Boxes around scratches, dents and cracks. The guideline "
            "does not say how to box a cluster of scratches, nor how tight a box must be."
        ),
        classes=list(BOX_CLASSES),
        guidelines=[guideline],
        items=items,
        annotations=annotations,
        gold=gold,
    )
