"""Geometry of the dashboard's charts, rendered as inline SVG by the templates.

Server-side on purpose: no JavaScript library, nothing from a CDN, works offline, and the
numbers drawn are the numbers in the run's results. Every function returns plain data
(positions, sizes, colours, labels); the templates only place it.
"""

from __future__ import annotations

import math

BLUE = (31, 111, 235)
RED = (214, 69, 69)
PALE = (244, 246, 249)


def _mix(a: tuple, b: tuple, t: float) -> tuple:
    t = min(max(t, 0.0), 1.0)
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))


def _hex(rgb: tuple) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def diverging(value: float | None) -> tuple[str, str]:
    """Fill and text colour for a value in [-1, 1] (kappa, alpha): blue up, red down."""
    if value is None or not math.isfinite(value):
        return "#eceff3", "#8a94a3"
    rgb = _mix(PALE, BLUE, value) if value >= 0 else _mix(PALE, RED, -value)
    dark = value > 0.55 or value < -0.55
    return _hex(rgb), "#ffffff" if dark else "#1c2430"


def sequential(share: float) -> tuple[str, str]:
    """Fill and text colour for a share in [0, 1]."""
    rgb = _mix(PALE, BLUE, share**0.7)
    return _hex(rgb), "#ffffff" if share > 0.45 else "#1c2430"


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def heatmap(
    rows: list[str],
    cols: list[str],
    matrix: list[list],
    *,
    kind: str = "diverging",
    digits: int = 2,
    cell: int = 44,
    label_width: int = 120,
    titles: list[list[str]] | None = None,
) -> dict:
    """A labelled grid. ``kind="diverging"``: values in [-1, 1]; ``"row_share"``: counts
    coloured by their share of the row (the printed number stays the count)."""
    top = 96
    cells = []
    for i, row in enumerate(matrix):
        total = sum(v for v in row if v) if kind == "row_share" else None
        for j, value in enumerate(row):
            if kind == "row_share":
                fill, ink = sequential((value or 0) / total if total else 0.0)
                text = _fmt(value, 0) if value is not None else "–"
            else:
                fill, ink = diverging(value)
                text = _fmt(value, digits)
            if kind == "diverging" and i == j:
                fill, ink, text = "#e6e9ef", "#8a94a3", "·"
            title = titles[i][j] if titles else f"{rows[i]} × {cols[j]}: {text}"
            cells.append(
                {
                    "x": label_width + j * cell,
                    "y": top + i * cell,
                    "size": cell - 2,
                    "cx": label_width + j * cell + (cell - 2) / 2,
                    "cy": top + i * cell + (cell - 2) / 2 + 4,
                    "fill": fill,
                    "ink": ink,
                    "text": text,
                    "title": title,
                }
            )
    return {
        "width": label_width + len(cols) * cell + 70,  # room for the slanted column labels
        "height": top + len(rows) * cell + 8,
        "cells": cells,
        "row_labels": [
            {"x": label_width - 8, "y": top + i * cell + cell / 2 + 3, "text": r}
            for i, r in enumerate(rows)
        ],
        "col_labels": [
            {"x": label_width + j * cell + cell / 2, "y": top - 8, "text": c}
            for j, c in enumerate(cols)
        ],
    }


def bars(entries: list[dict], *, width: int = 560, row: int = 26, label_width: int = 130) -> dict:
    """Horizontal bars on a 0–1 axis. ``entries``: ``{label, value, note?, highlight?}``."""
    plot = width - label_width - 70
    out = []
    for i, e in enumerate(entries):
        value = e.get("value")
        y = 10 + i * row
        out.append(
            {
                "label": e["label"],
                "y": y,
                "ty": y + row / 2 + 1,
                "w": 0 if value is None else max(1.0, plot * min(max(value, 0.0), 1.0)),
                "value": _fmt(value, 3),
                "vx": label_width + (0 if value is None else plot * min(max(value, 0.0), 1.0)) + 6,
                "note": e.get("note", ""),
                "highlight": e.get("highlight", False),
                "missing": value is None,
            }
        )
    ticks = [
        {"x": label_width + plot * t, "label": f"{t:g}", "y": 10 + len(entries) * row + 14}
        for t in (0, 0.25, 0.5, 0.75, 1.0)
    ]
    return {
        "width": width,
        "height": 10 + len(entries) * row + 22,
        "x0": label_width,
        "bar_h": row - 8,
        "plot_w": plot,
        "rows": out,
        "ticks": ticks,
        "axis_y": 10 + len(entries) * row,
    }


def _scale(lo: float, hi: float, x0: float, x1: float):
    span = (hi - lo) or 1.0
    return lambda v: x0 + (v - lo) / span * (x1 - x0)


def dot_whiskers(
    entries: list[dict],
    *,
    reference: float | None = None,
    width: int = 560,
    row: int = 24,
    label_width: int = 170,
    lo: float = 0.0,
    hi: float = 1.0,
) -> dict:
    """Point estimate with its 95% interval per row. ``entries``: ``{label, value, ci, n}``."""
    plot_right = width - 60
    sx = _scale(lo, hi, label_width, plot_right)
    out = []
    for i, e in enumerate(entries):
        value, ci = e.get("value"), e.get("ci")
        y = 12 + i * row + row / 2
        item = {
            "label": e["label"],
            "y": y,
            "n": e.get("n"),
            "basis": e.get("basis") or e.get("n"),
            "missing": value is None,
            "method": e.get("method", ""),
            # fewer than 10 items behind the estimate: drawn pale, whatever its interval
            "thin": (e.get("n_basis") if e.get("n_basis") is not None else e.get("n") or 0) < 10,
        }
        if value is not None:
            clamp = min(max(value, lo), hi)
            item.update({"x": sx(clamp), "value": _fmt(value, 3)})
        if ci:
            item.update({"x1": sx(min(max(ci[0], lo), hi)), "x2": sx(min(max(ci[1], lo), hi))})
            item["ci_text"] = f"[{ci[0]:.3f}, {ci[1]:.3f}]"
        item["wide"] = bool(ci) and (ci[1] - ci[0]) > 0.2
        out.append(item)
    height = 12 + len(entries) * row + 24
    ticks = [{"x": sx(t), "label": f"{t:g}"} for t in _ticks(lo, hi)]
    return {
        "width": width,
        "height": height,
        "rows": out,
        "ticks": ticks,
        "x0": label_width,
        "x1": plot_right,
        "axis_y": height - 22,
        "ref_x": sx(reference) if reference is not None else None,
        "ref_text": _fmt(reference, 3) if reference is not None else None,
    }


def _ticks(lo: float, hi: float) -> list[float]:
    step = 0.25 if hi - lo <= 1.01 else 0.5
    t, out = math.ceil(lo / step) * step, []
    while t <= hi + 1e-9:
        out.append(round(t, 4))
        t += step
    return out


def line_chart(points: list[dict], *, width: int = 560, height: int = 200) -> dict:
    """Alpha per run: ``points`` ``{label, value, ci}``, oldest first; CI as whiskers."""
    left, right, top, bottom = 44, width - 16, 14, height - 30
    values = [p["value"] for p in points if p.get("value") is not None]
    lows = [p["ci"][0] for p in points if p.get("ci")]
    highs = [p["ci"][1] for p in points if p.get("ci")]
    lo = min(values + lows, default=0.0)
    hi = max(values + highs, default=1.0)
    lo, hi = math.floor(lo * 10) / 10, math.ceil(hi * 10) / 10
    if hi - lo < 0.2:
        lo, hi = max(-1.0, lo - 0.1), min(1.0, hi + 0.1)
    sy = _scale(lo, hi, bottom, top)
    n = len(points)
    sx = (
        (lambda i: (left + right) / 2)
        if n == 1
        else (lambda i: left + i * (right - left) / (n - 1))
    )
    out, path = [], []
    for i, p in enumerate(points):
        v = p.get("value")
        entry = {"x": sx(i), "label": p["label"], "missing": v is None, "title": p.get("title", "")}
        if v is not None:
            entry.update({"y": sy(v), "value": _fmt(v, 3)})
            path.append(f"{'M' if not path else 'L'}{sx(i):.1f},{sy(v):.1f}")
        if p.get("ci"):
            entry.update({"y1": sy(p["ci"][0]), "y2": sy(p["ci"][1])})
        out.append(entry)
    grid = [{"y": sy(t), "label": f"{t:.1f}"} for t in _grid(lo, hi)]
    return {
        "width": width,
        "height": height,
        "points": out,
        "path": " ".join(path),
        "grid": grid,
        "left": left,
        "right": right,
        "bottom": bottom,
    }


def _grid(lo: float, hi: float) -> list[float]:
    step = 0.1 if hi - lo <= 0.6 else 0.2
    t, out = math.ceil(lo / step - 1e-9) * step, []
    while t <= hi + 1e-9:
        out.append(round(t, 4))
        t += step
    return out
