"""Synthetic box labels with planted labeling conventions, for metrics and run tests.

Every labeler sees the same objects; ``ann``, ``bob`` and ``eve`` only add random jitter
(sd 1.5 px per coordinate), ``cat`` draws loose boxes (sides x1.25 about the centre, so
areas x1.5625), ``fay`` tight ones (sides x0.8, areas x0.64) and ``dan`` draws one box
around each cluster of three small touching objects instead of one box per object.
``gus`` (not in ``LABELERS``) skips every object smaller than 50 x 50 pixels.
"""

from __future__ import annotations

import numpy as np

LABELERS = ("ann", "bob", "cat", "dan", "eve", "fay")
JITTER_ONLY = ("ann", "bob", "eve")
SCALE = {"cat": 1.25, "fay": 0.8}


def synthetic_labels(n_items: int = 60, seed: int = 1, labelers=LABELERS):
    """``({item: {labeler: [boxes]}}, {item: [true boxes]})``; every third item holds a
    cluster of three 40 x 40 objects 5 px apart, every item one or two larger ones."""
    rng = np.random.default_rng(seed)
    labels, truth = {}, {}
    for i in range(n_items):
        objects = []
        if i % 3 == 0:
            x0, y0 = rng.uniform(50, 300), rng.uniform(50, 300)
            objects += [("scratch", x0 + k * 45, y0, 40.0, 40.0) for k in range(3)]
        for _ in range(int(rng.integers(1, 3))):
            objects.append(
                (
                    "dent" if rng.random() < 0.3 else "scratch",
                    rng.uniform(400, 700),
                    rng.uniform(400, 700),
                    rng.uniform(40, 120),
                    rng.uniform(40, 120),
                )
            )
        key = f"i{i:03d}"
        truth[key] = [{"class": c, "x": x, "y": y, "w": w, "h": h} for c, x, y, w, h in objects]
        per = {}
        for lab in labelers:
            grouped = lab == "dan" and i % 3 == 0
            boxes = []
            for n, (cls, x, y, w, h) in enumerate(objects):
                if grouped and n < 3:
                    continue
                if lab == "gus" and w * h < 2500:
                    continue
                jx, jy, jw, jh = rng.normal(0, 1.5, 4)
                scale = SCALE.get(lab, 1.0)
                sw, sh = w * scale, h * scale
                left, top = x + w / 2 - sw / 2, y + h / 2 - sh / 2
                boxes.append(
                    {
                        "class": cls,
                        "x": round(max(left + jx, 0.0), 2),
                        "y": round(max(top + jy, 0.0), 2),
                        "w": round(sw + jw, 2),
                        "h": round(sh + jh, 2),
                    }
                )
            if grouped:
                x0, y0 = objects[0][1], objects[0][2]
                boxes.append(
                    {
                        "class": "scratch",
                        "x": round(x0 - 2, 2),
                        "y": round(y0 - 2, 2),
                        "w": 134.0,
                        "h": 44.0,
                    }
                )
            per[lab] = boxes
        labels[key] = per
    return labels, truth
