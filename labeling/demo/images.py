"""Pillow drawings of phones on an inspection table, with planted screen defects.

Every drawing is a pure function of its arguments and the ``numpy.random.Generator``
it is given, so the PNG bytes are reproducible for a seed (same Pillow/zlib build).

Defect appearance is driven by one continuous ``severity`` in [0, 1]:

* scratches (``shallow_scratch`` / ``deep_scratch`` / faint): width, opacity and length
  all grow smoothly with severity, so two scratches either side of the deep/shallow
  boundary (0.5) look almost the same; faint scratches (severity < 0.13) are barely
  visible;
* ``dent``: a shaded elliptical depression lit from the top left, radius grows with
  severity;
* ``crack``: an impact point with jagged, branching polylines, longer with severity.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

WIDTH = 256
HEIGHT = 384
_NOISE_SIGMA = 1.5  # sensor noise, grey levels (x1.5 on under-exposed cameras)
_NOISE_BLOCK = 4  # noise grain in pixels (coarser grain keeps PNGs small)
_SS = 4  # supersampling factor for anti-aliased thin strokes
_YY, _XX = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
_YY.flags.writeable = False
_XX.flags.writeable = False


@dataclass(frozen=True)
class PhoneModel:
    key: str
    name: str
    body_rgb: tuple[int, int, int]
    body_size: tuple[int, int]  # width, height in pixels
    corner: int
    bezel: int


PHONE_MODELS: tuple[PhoneModel, ...] = (
    PhoneModel("aster-5", "Aster 5", (58, 60, 66), (168, 318), 22, 7),
    PhoneModel("borealis-x", "Borealis X", (186, 188, 192), (180, 334), 26, 5),
    PhoneModel("cirrus-mini", "Cirrus Mini", (40, 52, 86), (152, 292), 18, 9),
)


# A drawn defect's extent: (left, top, right, bottom) in image pixels.
Box = tuple[float, float, float, float]


def _lines_box(polylines: list[list[tuple[float, float]]], pad: float) -> Box:
    """The bounding box of polylines stroked ``2 * pad`` wide."""
    xs = [x for line in polylines for x, _ in line]
    ys = [y for line in polylines for _, y in line]
    return (min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad)


def _stroke_mask(polylines: list[list[tuple[float, float]]], width_px: float) -> Image.Image:
    """Anti-aliased coverage mask (mode L, full size) of polylines of fractional width."""
    big = Image.new("L", (WIDTH * _SS, HEIGHT * _SS), 0)
    draw = ImageDraw.Draw(big)
    w = max(1, round(width_px * _SS))
    for line in polylines:
        pts = [(x * _SS, y * _SS) for x, y in line]
        draw.line(pts, fill=255, width=w, joint="curve")
    return big.reduce(_SS)


def _blend(arr: np.ndarray, mask: np.ndarray, color: tuple[float, float, float], alpha: float):
    """In place: arr = arr * (1 - a m) + color * a m, with m in [0, 1]."""
    a = (mask * alpha)[..., None]
    arr *= 1.0 - a
    arr += a * np.asarray(color, dtype=np.float32)


def _scratch_lines(
    rng: np.random.Generator,
    screen: tuple[int, int, int, int],
    severity: float,
    *,
    center: tuple[float, float] | None = None,
    angle: float | None = None,
):
    x0, y0, x1, y1 = screen
    sw, sh = x1 - x0, y1 - y0
    length = sh * (0.22 + 0.5 * severity) * rng.uniform(0.85, 1.15)
    if angle is None:
        angle = rng.uniform(0, math.pi)
    if center is None:
        cx = rng.uniform(x0 + 0.3 * sw, x1 - 0.3 * sw)
        cy = rng.uniform(y0 + 0.3 * sh, y1 - 0.3 * sh)
    else:
        cx, cy = center
    dx, dy = math.cos(angle), math.sin(angle)
    bow = rng.uniform(-0.08, 0.08) * length
    pts = []
    for t in np.linspace(-0.5, 0.5, 7):
        off = bow * (1 - 4 * t * t)
        px = cx + dx * t * length - dy * off
        py = cy + dy * t * length + dx * off
        pts.append((float(np.clip(px, x0 + 2, x1 - 2)), float(np.clip(py, y0 + 2, y1 - 2))))
    return [pts]


def _draw_scratch(arr, rng, screen, severity: float, **where) -> Box:
    lines = _scratch_lines(rng, screen, severity, **where)
    width = 0.45 + 2.6 * severity
    alpha = 0.07 + 0.72 * severity
    mask = np.asarray(_stroke_mask(lines, width), dtype=np.float32) / 255.0
    _blend(arr, mask, (38.0, 38.0, 44.0), alpha)
    return _lines_box(lines, width / 2 + 0.5)


def _draw_dent(arr, rng, screen, severity: float) -> Box:
    x0, y0, x1, y1 = screen
    rx = 9 + 22 * severity
    ry = rx * rng.uniform(0.55, 0.95)
    cx = rng.uniform(x0 + rx + 4, x1 - rx - 4)
    cy = rng.uniform(y0 + ry + 4, y1 - ry - 4)
    theta = rng.uniform(0, math.pi)
    u0, v0 = _XX - cx, _YY - cy
    c, s = math.cos(theta), math.sin(theta)
    u = (u0 * c + v0 * s) / rx
    v = (-u0 * s + v0 * c) / ry
    r2 = u * u + v * v
    inside = np.clip(1.0 - r2, 0.0, 1.0)
    # Depression lit from the top left: the upper-left wall is in shadow, the
    # lower-right wall catches the light.
    gx, gy = u0 / rx, v0 / ry
    amp = 22 + 40 * severity
    shade = amp * (gx + gy) * np.sqrt(inside) - 10 * severity * inside
    arr += shade[..., None]
    # The rotated ellipse's extent: the shading is zero outside it.
    ex = math.hypot(rx * c, ry * s)
    ey = math.hypot(rx * s, ry * c)
    return (cx - ex, cy - ey, cx + ex, cy + ey)


def _crack_lines(rng, screen, severity: float):
    x0, y0, x1, y1 = screen
    sx = rng.uniform(x0 + 20, x1 - 20)
    sy = rng.uniform(y0 + 30, y1 - 30)
    lines: list[list[tuple[float, float]]] = []
    n_branches = int(rng.integers(3, 6))
    base_angles = rng.uniform(0, 2 * math.pi) + np.arange(n_branches) * (2 * math.pi / n_branches)
    stack = [
        (sx, sy, float(a) + rng.uniform(-0.3, 0.3), 40 + 110 * severity, 0) for a in base_angles
    ]
    while stack:
        px, py, ang, budget, depth = stack.pop()
        pts = [(px, py)]
        travelled = 0.0
        while travelled < budget:
            step = rng.uniform(5, 13)
            ang += rng.uniform(-0.55, 0.55)
            px, py = px + step * math.cos(ang), py + step * math.sin(ang)
            if not (x0 + 1 <= px <= x1 - 1 and y0 + 1 <= py <= y1 - 1):
                break  # the crack runs off the glass
            pts.append((px, py))
            travelled += step
            if depth < 2 and rng.random() < 0.12:
                side = 1 if rng.random() < 0.5 else -1
                stack.append((px, py, ang + side * rng.uniform(0.5, 1.1), budget * 0.45, depth + 1))
        if len(pts) > 1:
            lines.append(pts)
    return lines, (sx, sy)


def _draw_crack(arr, rng, screen, severity: float) -> Box:
    lines, (sx, sy) = _crack_lines(rng, screen, severity)
    mask_img = _stroke_mask(lines, 1.1 + 0.6 * severity)
    ImageDraw.Draw(mask_img).ellipse((sx - 3, sy - 3, sx + 3, sy + 3), fill=255)
    mask = np.asarray(mask_img, dtype=np.float32) / 255.0
    _blend(arr, mask, (25.0, 25.0, 30.0), 0.85)
    return _lines_box([*lines, [(sx - 3, sy - 3), (sx + 3, sy + 3)]], 1.1 + 0.3 * severity)


def _draw_glare(arr, rng, screen_mask: np.ndarray, screen) -> None:
    x0, y0, x1, y1 = screen
    band = Image.new("L", (WIDTH, HEIGHT), 0)
    top = rng.uniform(y0, y0 + 0.5 * (y1 - y0))
    thickness = rng.uniform(25, 50)
    slope = rng.uniform(0.4, 1.0) * (x1 - x0)
    ImageDraw.Draw(band).polygon(
        [(x0, top + slope), (x1, top), (x1, top + thickness), (x0, top + slope + thickness)],
        fill=255,
    )
    band = band.filter(ImageFilter.GaussianBlur(9))
    m = np.asarray(band, dtype=np.float32) / 255.0 * screen_mask
    arr += (rng.uniform(45, 70) * m)[..., None]


def _phone_canvas(rng: np.random.Generator, model: PhoneModel):
    """The phone on the table, before defects: (pixels as float32 RGB, screen
    rectangle, screen mask)."""
    img = Image.new("RGB", (WIDTH, HEIGHT), (128, 128, 128))
    draw = ImageDraw.Draw(img)
    bw, bh = model.body_size
    jx, jy = rng.integers(-5, 6, size=2)
    bx0 = (WIDTH - bw) // 2 + int(jx)
    by0 = (HEIGHT - bh) // 2 + int(jy)
    body = (bx0, by0, bx0 + bw, by0 + bh)
    # Soft shadow of the phone on the table.
    draw.rounded_rectangle(
        (body[0] + 4, body[1] + 5, body[2] + 4, body[3] + 5), model.corner, fill=(96, 96, 98)
    )
    draw.rounded_rectangle(body, model.corner, fill=model.body_rgb)
    b = model.bezel
    bezel = (body[0] + b, body[1] + b, body[2] - b, body[3] - b)
    draw.rounded_rectangle(bezel, max(model.corner - b, 4), fill=(14, 14, 16))
    screen = (bezel[0] + 5, bezel[1] + 16, bezel[2] - 5, bezel[3] - 14)
    cam_x = (bezel[0] + bezel[2]) // 2
    draw.ellipse((cam_x - 3, bezel[1] + 5, cam_x + 3, bezel[1] + 11), fill=(40, 44, 60))
    draw.rectangle((body[2], body[1] + 70, body[2] + 2, body[1] + 110), fill=model.body_rgb)

    smask_img = Image.new("L", (WIDTH, HEIGHT), 0)
    ImageDraw.Draw(smask_img).rounded_rectangle(screen, 6, fill=255)
    smask = np.asarray(smask_img, dtype=np.float32) / 255.0

    arr = np.asarray(img, dtype=np.float32).copy()
    # Table: gentle vertical gradient.
    table = np.linspace(138, 112, HEIGHT, dtype=np.float32)[:, None, None]
    is_table = np.all(arr == 128.0, axis=2, keepdims=True)
    arr = np.where(is_table, table, arr)
    # Lit screen: subtle diagonal gradient, slightly blue.
    g = 198 - 26 * (_YY / HEIGHT) - 8 * (_XX / WIDTH) + rng.uniform(-4, 4)
    screen_rgb = np.stack([g - 6, g - 2, g + 4], axis=2)
    arr = arr * (1 - smask[..., None]) + screen_rgb * smask[..., None]
    return arr, screen, smask


def _finish(arr, rng, *, smask, screen, brightness, white_balance, glare) -> bytes:
    """Glare, exposure, white balance and sensor noise; the PNG bytes."""
    if glare:
        _draw_glare(arr, rng, smask, screen)

    arr *= brightness
    arr *= np.asarray(white_balance, dtype=np.float32)
    # Sensor noise: luminance only, at half resolution (keeps PNGs small).
    k = _NOISE_BLOCK
    sigma = _NOISE_SIGMA * (1.5 if brightness < 0.6 else 1.0)
    noise = rng.normal(0.0, sigma, size=(HEIGHT // k, WIDTH // k))
    noise = np.repeat(np.repeat(noise, k, axis=0), k, axis=1).astype(np.float32)
    arr += noise[..., None]
    out = np.clip(arr + 0.5, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(out, "RGB").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def render_phone(
    rng: np.random.Generator,
    *,
    model: PhoneModel,
    defect: str,
    severity: float,
    brightness: float,
    white_balance: tuple[float, float, float],
    glare: bool,
) -> bytes:
    """Draw one phone and return PNG bytes.

    ``defect`` is ``"no_defect"``, ``"scratch"`` (any scratch, severity decides how it
    looks), ``"dent"`` or ``"crack"``.  ``brightness`` multiplies the whole exposure
    (camera x factory), ``white_balance`` the RGB channels.
    """
    arr, screen, smask = _phone_canvas(rng, model)
    if defect == "scratch":
        _draw_scratch(arr, rng, screen, severity)
    elif defect == "dent":
        _draw_dent(arr, rng, screen, severity)
    elif defect == "crack":
        _draw_crack(arr, rng, screen, severity)
    elif defect != "no_defect":
        raise ValueError(f"unknown defect {defect!r}")
    return _finish(
        arr,
        rng,
        smask=smask,
        screen=screen,
        brightness=brightness,
        white_balance=white_balance,
        glare=glare,
    )


@dataclass(frozen=True)
class DrawnDefect:
    """One defect drawn on a box image: its kind (``scratch`` | ``dent`` | ``crack``),
    its box in pixels (x, y = top-left) and, for scratches drawn as a cluster, the
    cluster's number on the image (None otherwise)."""

    kind: str
    x: float
    y: float
    w: float
    h: float
    cluster: int | None = None


def _to_defect(kind: str, box: Box, screen, cluster: int | None = None) -> DrawnDefect:
    """A drawn extent clipped to the screen, rounded to 2 decimals as boxes are stored."""
    left, top = max(box[0], screen[0]), max(box[1], screen[1])
    right, bottom = min(box[2], screen[2]), min(box[3], screen[3])
    return DrawnDefect(
        kind,
        round(left, 2),
        round(top, 2),
        round(right - left, 2),
        round(bottom - top, 2),
        cluster,
    )


def render_phone_defects(
    rng: np.random.Generator,
    *,
    model: PhoneModel,
    groups: list[tuple[str, float]],
    brightness: float,
    white_balance: tuple[float, float, float],
    glare: bool,
) -> tuple[bytes, list[DrawnDefect]]:
    """Draw a phone with several defects and return (PNG bytes, where each one is).

    ``groups``: up to three ``(kind, severity)``, each drawn in its own third of the
    screen (top, middle, bottom); ``kind`` is ``scratch``, ``dent``, ``crack`` or
    ``cluster`` (two or three near-parallel scratches a few pixels apart: the case where
    one labeler draws one box and another one box per scratch).
    """
    if len(groups) > 3:
        raise ValueError("at most three defect groups per image")
    arr, screen, smask = _phone_canvas(rng, model)
    x0, y0, x1, y1 = screen
    third = (y1 - y0) / 3
    drawn: list[DrawnDefect] = []
    n_clusters = 0
    for band_no, (kind, severity) in enumerate(groups):
        band = (x0, round(y0 + band_no * third), x1, round(y0 + (band_no + 1) * third))
        if kind == "scratch":
            drawn.append(_to_defect(kind, _draw_scratch(arr, rng, band, severity), screen))
        elif kind == "dent":
            drawn.append(_to_defect(kind, _draw_dent(arr, rng, band, severity), screen))
        elif kind == "crack":
            drawn.append(_to_defect(kind, _draw_crack(arr, rng, band, severity), screen))
        elif kind == "cluster":
            n_clusters += 1
            bx0, by0, bx1, by1 = band
            cx = rng.uniform(bx0 + 0.35 * (bx1 - bx0), bx1 - 0.35 * (bx1 - bx0))
            cy = (by0 + by1) / 2
            angle = rng.uniform(-0.35, 0.35)  # roughly horizontal, so they sit side by side
            gap = rng.uniform(8, 12)
            for j in range(int(rng.integers(2, 4))):
                offset = (j - 1) * gap
                center = (
                    cx - math.sin(angle) * offset + rng.uniform(-6, 6),
                    cy + math.cos(angle) * offset,
                )
                box = _draw_scratch(
                    arr,
                    rng,
                    band,
                    severity * rng.uniform(0.85, 1.1),
                    center=center,
                    angle=angle + rng.uniform(-0.1, 0.1),
                )
                drawn.append(_to_defect("scratch", box, screen, cluster=n_clusters))
        else:
            raise ValueError(f"unknown defect {kind!r}")
    png = _finish(
        arr,
        rng,
        smask=smask,
        screen=screen,
        brightness=brightness,
        white_balance=white_balance,
        glare=glare,
    )
    return png, drawn
