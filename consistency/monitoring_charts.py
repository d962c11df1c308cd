"""Geometry of the monitoring page's small charts (inline SVG, no JavaScript, no CDN).

Every function takes a check's stored figures and returns plain data: coordinates
already formatted as strings (so the template never localises a number), labels and
titles. The page draws many of them side by side (small multiples), so each one has a
fixed ``viewBox`` and scales to its column with ``width="100%"``.
"""

from __future__ import annotations

import math


def _c(x: float) -> str:
    return f"{x:.1f}"


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, int):
        return str(v)
    return f"{v:.{digits}g}"


def series_chart(series: dict | None, *, current_start: str | None = None) -> dict | None:
    """Weekly figure with the alarm band: ``series`` = ``{figure, points: [{week, n,
    value}], alarm: {low, high}, since}`` (see ``consistency.monitoring``).

    Points outside the band are marked; the current window is shaded from the first
    week that reaches into it (``current_start``, ISO date)."""
    if not series or not series.get("points"):
        return None
    width, height = 300, 130
    left, right, top, bottom = 40, width - 18, 10, height - 24
    pts = series["points"]
    values = [p["value"] for p in pts if p.get("value") is not None]
    alarm = series.get("alarm") or {}
    bounds = values + [v for v in (alarm.get("low"), alarm.get("high")) if v is not None]
    if not bounds:
        return None
    lo, hi = min(bounds), max(bounds)
    pad = (hi - lo) * 0.12 or max(abs(hi) * 0.1, 0.05)
    lo, hi = lo - pad, hi + pad

    def sy(v):
        return bottom - (v - lo) / (hi - lo) * (bottom - top)

    n = len(pts)

    def sx(i):
        return (left + right) / 2 if n == 1 else left + i * (right - left) / (n - 1)

    low, high = alarm.get("low"), alarm.get("high")
    out, path = [], []
    for i, p in enumerate(pts):
        v = p.get("value")
        entry = {"x": _c(sx(i)), "label": p["week"][5:], "title": f"week of {p['week']}"}
        if v is not None:
            # marked only in the current window: baseline weeks scatter around the band
            in_current = current_start is None or p["week"] >= current_start[:10]
            outside = in_current and (
                (low is not None and v < low) or (high is not None and v > high)
            )
            entry.update({"y": _c(sy(v)), "outside": outside})
            entry["title"] += f": {_fmt(v)} (n={p.get('n')})"
            path.append(f"{'M' if not path else 'L'}{sx(i):.1f},{sy(v):.1f}")
        else:
            entry["title"] += f": no figure (n={p.get('n')})"
        out.append(entry)
    band = None
    if low is not None or high is not None:
        y_top = sy(high) if high is not None else top
        y_bottom = sy(low) if low is not None else bottom
        band = {
            "y": _c(min(y_top, y_bottom)),
            "h": _c(abs(y_bottom - y_top)),
            "low_y": _c(sy(low)) if low is not None else None,
            "high_y": _c(sy(high)) if high is not None else None,
        }
    shade_x = None
    if current_start:
        for i, p in enumerate(pts):
            if p["week"] >= current_start[:10]:
                shade_x = sx(max(i - 0.5, 0))
                break
    ticks = [{"y": _c(sy(v)), "label": _fmt(v, 3)} for v in (lo + pad, hi - pad)]
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": right,
        "top": top,
        "bottom": bottom,
        "path": " ".join(path),
        "points": out,
        "band": band,
        "ticks": ticks,
        "shade_x": _c(shade_x) if shade_x is not None else None,
        "shade_w": _c(right - shade_x) if shade_x is not None else None,
        "label_every": max(1, math.ceil(n / 6)),
        "plot_w": _c(right - left),
        "plot_h": _c(bottom - top),
        "figure": series.get("figure", ""),
    }


def histogram_pair(histogram: dict | None) -> dict | None:
    """Baseline and current distributions of a number on the same bins, as shares (so
    windows of different sizes compare): baseline as outlined bars, current filled."""
    if not histogram:
        return None
    b, c = histogram["baseline"], histogram["current"]
    nb, nc = sum(b), sum(c)
    if not nb and not nc:
        return None
    width, height, left, bottom, top = 240, 84, 4, 66, 6
    k = len(b)
    bw = (width - 2 * left) / k
    sb = [x / nb if nb else 0.0 for x in b]
    sc = [x / nc if nc else 0.0 for x in c]
    peak = max(sb + sc) or 1.0
    bars = []
    for i in range(k):
        x = left + i * bw
        bars.append(
            {
                "x": _c(x + 1),
                "w": _c(max(bw - 2, 1)),
                "by": _c(bottom - sb[i] / peak * (bottom - top)),
                "bh": _c(sb[i] / peak * (bottom - top)),
                "cy": _c(bottom - sc[i] / peak * (bottom - top)),
                "ch": _c(sc[i] / peak * (bottom - top)),
                "title": f"{_fmt(histogram['edges'][i])}–{_fmt(histogram['edges'][i + 1])}: "
                f"baseline {sb[i]:.0%}, current {sc[i]:.0%}",
            }
        )
    return {
        "width": width,
        "height": height,
        "bottom": bottom,
        "bars": bars,
        "lo": _fmt(histogram["edges"][0]),
        "hi": _fmt(histogram["edges"][-1]),
    }


def share_pair(baseline: dict, current: dict, *, limit: int = 8) -> dict | None:
    """Category shares in the two windows as paired horizontal bars (largest first)."""
    bs, cs = baseline.get("shares") or {}, current.get("shares") or {}
    keys = sorted(set(bs) | set(cs), key=lambda k: -max(bs.get(k) or 0, cs.get(k) or 0))
    keys = [k for k in keys if (bs.get(k) or 0) or (cs.get(k) or 0)][:limit]
    if not keys:
        return None
    width, row, label_w = 240, 20, 92
    plot = width - label_w - 34
    rows = []
    for i, k in enumerate(keys):
        b, c = bs.get(k) or 0.0, cs.get(k) or 0.0
        y = 4 + i * row
        rows.append(
            {
                "label": k if len(k) <= 14 else k[:13] + "…",
                "title": f"{k}: baseline {b:.1%}, current {c:.1%}",
                "y": _c(y),
                "ty": _c(y + 12),
                "bw": _c(max(plot * b, 0.5)),
                "cw": _c(max(plot * c, 0.5)),
                "cy": _c(y + 8),
                "text": f"{c:.0%}",
                "tx": _c(label_w + plot * max(b, c) + 3),
            }
        )
    return {"width": width, "height": 8 + row * len(keys), "x0": label_w, "rows": rows}
