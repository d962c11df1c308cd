"""Deterministic, Django-free demo data for Concord.

``build_demo(seed, n_images)`` returns a :class:`~labeling.demo.types.DemoData` with three
projects and their users:

* ``phone-screen-defects`` ("Phone screen defects", classification, overlap 3): PNG
  drawings of phones (256x384) with planted screen defects, provenance metadata
  (factory, line, camera + camera_settings, phone model, capture time, device), tags,
  two guideline versions, 3 labels per item from 8 simulated labelers with planted
  behaviours (see :mod:`labeling.demo.labelers`), and gold labels by the SME;
* ``call-centre-snippets`` ("Call-centre snippets", transcription, overlap 3): short
  utterances with an ASR draft as payload text and transcripts by 4 labelers that
  disagree on conventions (see :mod:`labeling.demo.speech`);
* ``phone-screen-boxes`` ("Phone screen boxes", detection, overlap 3): phones with up to
  three defect groups each (scratches, clusters of scratches, dents, cracks), the truth
  boxes where the generator drew them, and boxes by 5 labelers with planted conventions
  (loose boxes, one box per cluster; see :mod:`labeling.demo.boxes`).

Determinism: every random decision comes from ``numpy.random.default_rng([seed,
stream, *indices])`` (no global state, no clock), so the same seed gives identical
image bytes, labels and metadata, and a decision for one item does not shift when
another item changes.  Times are fixed: captures span six weeks from
2024-03-04T00:00Z.

Wiring into Django (``manage.py seed_demo``)
-------------------------------------------
* ``DemoProject`` -> Project(name, slug, task_type, level, overlap); ``classes`` ->
  LabelClass(key, name, rank, is_borderline; ``description`` where the model has it);
* ``guidelines`` -> Guideline(version, text, published_at); ``examples`` are item
  external ids (create items first);
* ``DemoItem`` -> Item(external_id, metadata, tags); ``image_png`` saved as the image
  file named ``item.filename``; ``text`` is the text payload (speech only).  ``truth``,
  ``severity`` and ``is_faint`` are generator ground truth: do not show them to
  labelers (they may go into a hidden field or nowhere);
* ``DemoAnnotation`` -> Annotation(item by external id, labeler by username, value,
  guideline_version, time_spent_s, comment, created_at); annotations are sorted by
  ``created_at`` so they can be replayed in order;
* ``DemoGold`` -> the SME's gold label for the item (``annotator`` is the SME user);
* ``DemoUser`` -> User(username, full name, email, is_superuser) plus one membership per
  ``roles`` entry (project slug -> ``manager`` | ``sme`` | ``labeler``).  No passwords.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from .boxes import BOX_LABELERS, BOX_PERSONAS, BOX_PROJECT_SLUG, box_project
from .images import PHONE_MODELS, render_phone
from .labelers import (
    BORDERLINE,
    CRACK,
    DEEP,
    DENT,
    IMAGE_LABELERS,
    NO_DEFECT,
    SEVERITY_BOUNDARY,
    SHALLOW,
    ItemContext,
    boundary_closeness,
    simulate_comment,
    simulate_label,
    simulate_time_spent,
)
from .speech import (
    DEVICE_NOISE,
    TRANSCRIBERS,
    UTTERANCES,
    asr_draft,
    render,
    tokenize,
    transcribe,
)
from .types import (
    DemoAnnotation,
    DemoClass,
    DemoData,
    DemoGold,
    DemoGuideline,
    DemoItem,
    DemoProject,
    DemoUser,
)

IMAGE_PROJECT_SLUG = "phone-screen-defects"
SPEECH_PROJECT_SLUG = "call-centre-snippets"
MANAGER = "admin"
SME = "sme"

START = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday; captures span six weeks from here
N_DAYS = 42
GUIDELINE_V2_DAY = 21  # items captured from this day on are labelled under guideline v2
MIN_IMAGES = 40

# Random streams (the second element of every seed sequence).
_S_LAYOUT, _S_ITEM, _S_ASSIGN, _S_LABEL, _S_GOLD, _S_SPEECH, _S_SPEECH_LABEL = range(1, 8)


def _rng(seed: int, stream: int, *idx: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, *idx])


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- schema

IMAGE_CLASSES: tuple[DemoClass, ...] = (
    DemoClass(NO_DEFECT, "No defect", 0, "Clean screen: no scratch, dent or crack visible."),
    DemoClass(
        SHALLOW,
        "Shallow scratch",
        1,
        "A thin, light line in the coating; does not catch a fingernail.",
    ),
    DemoClass(
        DEEP, "Deep scratch", 2, "A wide, dark line cut into the glass; catches a fingernail."
    ),
    DemoClass(DENT, "Dent", 3, "A shaded, roughly elliptical depression in the surface."),
    DemoClass(CRACK, "Crack", 4, "Jagged, branching fracture lines, usually from one impact."),
    DemoClass(
        BORDERLINE,
        "Borderline",
        None,
        "Use when the item sits on the boundary between two classes and you cannot decide.",
        is_borderline=True,
    ),
)


@dataclass(frozen=True)
class Factory:
    key: str
    brightness: float  # lighting of the inspection hall


@dataclass(frozen=True)
class Camera:
    key: str
    serial: str
    factory: str
    line: str
    exposure_ms: float
    gain: float
    white_balance_k: int
    brightness: float  # exposure multiplier applied to the drawing
    share: float  # fraction of items it captures

    @property
    def rgb(self) -> tuple[float, float, float]:
        """Colour cast of the white-balance setting: warm below ~5100 K, cool above."""
        t = (self.white_balance_k - 5100) / 500
        return (1.0 - 0.04 * t, 1.0, 1.0 + 0.04 * t)


FACTORIES = {"shenzhen-a": Factory("shenzhen-a", 1.0), "penang-b": Factory("penang-b", 0.92)}
CAMERAS: tuple[Camera, ...] = (
    Camera("cam-1", "SZA-CAM-0142", "shenzhen-a", "A1", 8.0, 1.0, 5200, 1.0, 0.28),
    Camera("cam-2", "SZA-CAM-0178", "shenzhen-a", "A2", 7.5, 1.2, 4700, 0.96, 0.26),
    Camera("cam-3", "PNB-CAM-0311", "penang-b", "B1", 9.0, 1.0, 5600, 1.05, 0.26),
    # Under-exposed after a firmware reset: its images are dark and labels noisier.
    Camera("cam-4", "PNB-CAM-0356", "penang-b", "B1", 3.5, 0.8, 5000, 0.45, 0.20),
)  # fmt: skip
DARK_CAMERA = "cam-4"
# Planted drift for monitoring: cam-2's lamp ages and its images lose 30 % of their
# brightness from day 28 (week 5) on; the other cameras stay as they were.
DIMMING_CAMERA = "cam-2"
DIMMING_FROM_DAY = 28
DIMMING_FACTOR = 0.7

# Truth mix; "faint" is a very low-severity scratch (truth shallow_scratch, is_faint).
_CLASS_SHARES = (
    (SHALLOW, 0.2),
    (DEEP, 0.175),
    (DENT, 0.125),
    (CRACK, 0.1),
    ("faint", 0.0875),
)
GLARE_SHARE = 0.1


def _quotas(n: int, shares: list[tuple[str, float]], rest: str | None = None) -> list[str]:
    """Exactly-sized list of keys: floor(n * share) each, the remainder to ``rest``
    (or spread over the keys in order)."""
    out: list[str] = []
    for key, share in shares:
        out += [key] * int(n * share)
    i = 0
    while len(out) < n:
        out.append(rest if rest is not None else shares[i % len(shares)][0])
        i += 1
    return out


def _severity(rng: np.random.Generator, kind: str) -> float:
    if kind == NO_DEFECT:
        return 0.0
    if kind == "faint":
        return float(rng.uniform(0.03, 0.12))
    near = rng.random() < 0.4  # 40% of scratches sit close to the deep/shallow boundary
    if kind == SHALLOW:
        return float(rng.uniform(0.40, SEVERITY_BOUNDARY) if near else rng.uniform(0.15, 0.40))
    if kind == DEEP:
        return float(rng.uniform(SEVERITY_BOUNDARY, 0.60) if near else rng.uniform(0.60, 1.0))
    return float(rng.uniform(0.2, 1.0))  # dent / crack size


def _capture_times(rng: np.random.Generator, n: int) -> list[datetime]:
    days = rng.integers(0, N_DAYS, size=n)
    secs = rng.integers(6 * 3600, 22 * 3600, size=n)  # two shifts, 06:00-22:00 UTC
    offsets = sorted(int(d) * 86400 + int(s) for d, s in zip(days, secs, strict=True))
    return [START + timedelta(seconds=o) for o in offsets]


def _balanced_assign(
    rng: np.random.Generator, n_items: int, labelers: list[str], overlap: int, forced=None
) -> list[list[str]]:
    """``overlap`` distinct labelers per item; always the least loaded, ties broken at
    random, so workloads differ by at most one."""
    forced = forced or {}
    load = dict.fromkeys(labelers, 0)
    out: list[list[str]] = []
    for i in range(n_items):
        if i in forced:
            chosen = list(forced[i])
        else:
            tie = rng.random(len(labelers))
            order = sorted(range(len(labelers)), key=lambda j: (load[labelers[j]], tie[j]))
            chosen = [labelers[j] for j in order[:overlap]]
        for u in chosen:
            load[u] += 1
        out.append(chosen)
    return out


# --------------------------------------------------------------------------- images


def _image_items(seed: int, n: int) -> tuple[list[DemoItem], list[ItemContext]]:
    lay = _rng(seed, _S_LAYOUT)
    kinds = _quotas(n, list(_CLASS_SHARES), rest=NO_DEFECT)
    cams = _quotas(n, [(c.key, c.share) for c in CAMERAS])
    models = _quotas(n, [(m.key, 1 / len(PHONE_MODELS)) for m in PHONE_MODELS])
    glare = _quotas(n, [("glare", GLARE_SHARE)], rest="")
    for lst in (kinds, cams, models, glare):
        lay.shuffle(lst)
    times = _capture_times(lay, n)
    cam_by_key = {c.key: c for c in CAMERAS}
    model_by_key = {m.key: m for m in PHONE_MODELS}

    items: list[DemoItem] = []
    ctxs: list[ItemContext] = []
    for i in range(n):
        rng = _rng(seed, _S_ITEM, i)
        kind, cam, model = kinds[i], cam_by_key[cams[i]], model_by_key[models[i]]
        severity = _severity(rng, kind)
        is_faint = kind == "faint"
        truth = SHALLOW if is_faint else kind
        tags = []
        if cam.key == DARK_CAMERA:
            tags.append("dark")
        if glare[i]:
            tags.append("glare")
        brightness = cam.brightness * FACTORIES[cam.factory].brightness
        brightness *= float(rng.uniform(0.97, 1.03))
        if cam.key == DIMMING_CAMERA and times[i] >= START + timedelta(days=DIMMING_FROM_DAY):
            brightness *= DIMMING_FACTOR
        drawn = "scratch" if truth in (SHALLOW, DEEP) else truth
        png = render_phone(
            rng,
            model=model,
            defect=drawn,
            severity=severity,
            brightness=brightness,
            white_balance=cam.rgb,
            glare=bool(glare[i]),
        )
        metadata = {
            "factory": cam.factory,
            "line": cam.line,
            "camera": cam.key,
            "camera_settings": {
                "exposure_ms": cam.exposure_ms,
                "gain": cam.gain,
                "white_balance": cam.white_balance_k,
            },
            "phone_model": model.name,
            "captured_at": _iso(times[i]),
            "device": cam.serial,
        }
        items.append(
            DemoItem(
                external_id=f"img-{i + 1:05d}",
                image_png=png,
                text=None,
                metadata=metadata,
                tags=tags,
                truth=truth,
                severity=round(severity, 4),
                is_faint=is_faint,
            )
        )
        ctxs.append(ItemContext(truth, severity, is_faint, "dark" in tags, "glare" in tags))
    return items, ctxs


def _captured(item: DemoItem) -> datetime:
    return datetime.strptime(item.metadata["captured_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _labelled_at(rng: np.random.Generator, captured: datetime, cutoff: datetime | None):
    """Some minutes to a day and a half after capture; before ``cutoff`` if given."""
    created = captured + timedelta(seconds=int(rng.integers(20 * 60, 36 * 3600)))
    if cutoff is not None and created >= cutoff:
        span = (cutoff - captured).total_seconds()
        created = captured + timedelta(seconds=int(span * rng.uniform(0.3, 0.95)))
    return created


def _image_guidelines(items: list[DemoItem]) -> list[DemoGuideline]:
    def pick(pred) -> str | None:
        best = [it for it in items if pred(it) and not it.tags]  # well lit, no glare
        return best[0].external_id if best else None

    def mid(key, lo, hi):
        return pick(lambda it: it.truth == key and not it.is_faint and lo <= it.severity <= hi)

    v1_examples = [
        e
        for e in (
            pick(lambda it: it.truth == NO_DEFECT),
            mid(SHALLOW, 0.15, 0.35),
            mid(DEEP, 0.7, 1.0),
            mid(DENT, 0.4, 1.0),
            mid(CRACK, 0.4, 1.0),
        )
        if e
    ]
    v2_extra = [e for e in (mid(SHALLOW, 0.44, 0.5), mid(DEEP, 0.5, 0.56)) if e]
    v1 = DemoGuideline(
        version=1,
        title="Phone screen defects v1",
        text=(
            "# Phone screen defects (v1)\n\n"
            "Look at the screen only, and pick the most severe defect you see.\n\n"
            "- **No defect**: clean screen.\n"
            "- **Shallow scratch**: a light, thin line.\n"
            "- **Deep scratch**: a dark, clearly visible line.\n"
            "- **Dent**: a shaded round or oval depression.\n"
            "- **Crack**: jagged lines, often branching from one point.\n"
            "- **Borderline**: only if you really cannot decide.\n"
        ),
        examples=v1_examples,
        published_at=START - timedelta(days=3),
    )
    v2 = DemoGuideline(
        version=2,
        title="Phone screen defects v2: deep vs shallow",
        text=(
            "# Phone screen defects (v2)\n\n"
            "Unchanged from v1 except for scratches.\n\n"
            "## Deep vs shallow scratch\n\n"
            "Judge **width and darkness at 100% zoom**, not length:\n\n"
            "1. **Deep** if the line is **2 px wide or more** along most of its length "
            "*and* clearly darker than the bezel edge next to it (it would catch a "
            "fingernail).\n"
            "2. **Shallow** if it is about 1 px wide, or lighter grey than the bezel "
            "edge (it is in the coating only).\n"
            "3. A long thin line is still shallow; a short wide one is deep.\n"
            "4. If the two rules disagree, choose **Borderline** and add a comment.\n\n"
            "Dark images: judge width, not darkness.\n"
        ),
        examples=v1_examples + v2_extra,
        published_at=START + timedelta(days=GUIDELINE_V2_DAY),
    )
    return [v1, v2]


def _image_project(seed: int, n_images: int) -> DemoProject:
    items, ctxs = _image_items(seed, n_images)
    labelers = [p.username for p in IMAGE_LABELERS]
    profile = {p.username: p for p in IMAGE_LABELERS}
    assignment = _balanced_assign(_rng(seed, _S_ASSIGN), len(items), labelers, 3)
    v2_at = START + timedelta(days=GUIDELINE_V2_DAY)

    annotations: list[DemoAnnotation] = []
    for i, (item, ctx, chosen) in enumerate(zip(items, ctxs, assignment, strict=True)):
        captured = _captured(item)
        version = 1 if captured < v2_at else 2
        for username in chosen:
            rng = _rng(seed, _S_LABEL, i, labelers.index(username))
            p = profile[username]
            created = _labelled_at(rng, captured, v2_at if version == 1 else None)
            day = (created - START).total_seconds() / 86400
            value = simulate_label(p, ctx, rng, guideline_version=version, day=day)
            annotations.append(
                DemoAnnotation(
                    item=item.external_id,
                    labeler=username,
                    value=value,
                    time_spent_s=simulate_time_spent(p, ctx, rng),
                    guideline_version=version,
                    created_at=created,
                    comment=simulate_comment(p, ctx, rng),
                )
            )
    annotations.sort(key=lambda a: (a.created_at, a.item, a.labeler))

    # Gold: the SME labels a class-stratified sample of clear-cut (non-faint) items.
    gold_rng = _rng(seed, _S_GOLD)
    per_class = max(1, min(8, n_images // 40))
    gold_at = START + timedelta(days=N_DAYS + 2, hours=9)
    gold: list[DemoGold] = []
    for key in (NO_DEFECT, SHALLOW, DEEP, DENT, CRACK):
        pool = [it.external_id for it in items if it.truth == key and not it.is_faint]
        picked = gold_rng.choice(len(pool), size=min(per_class, len(pool)), replace=False)
        gold += [
            DemoGold(pool[int(j)], key, SME, gold_at + timedelta(minutes=len(gold) + k))
            for k, j in enumerate(sorted(picked))
        ]
    gold.sort(key=lambda g: g.item)

    return DemoProject(
        name="Phone screen defects",
        slug=IMAGE_PROJECT_SLUG,
        task_type="classification",
        level="nominal",
        overlap=3,
        description=(
            "Visual inspection of phone screens from two factories. Classes are ordered "
            "by severity; deep vs shallow scratches are hard to tell apart near the "
            "boundary, and camera cam-4 is under-exposed."
        ),
        classes=list(IMAGE_CLASSES),
        guidelines=_image_guidelines(items),
        items=items,
        annotations=annotations,
        gold=gold,
        # 320 images over six weeks put ~28 of one camera's images in the last two weeks:
        # enough for a verdict on a 30 % brightness drop, not for the default 30.
        monitoring_min_window=20,
    )


# --------------------------------------------------------------------------- speech


def _speech_project(seed: int) -> DemoProject:
    lay = _rng(seed, _S_SPEECH)
    n = len(UTTERANCES)
    devices = _quotas(n - 1, [("headset", 0.37), ("phone", 0.33), ("car", 0.3)])
    lay.shuffle(devices)
    devices = ["headset", *devices]  # the anchor example is a clean headset call
    times = _capture_times(lay, n)
    labelers = [t.username for t in TRANSCRIBERS]
    anchor_labelers = {0: [t.username for t in TRANSCRIBERS if t.style != "lower"]}
    assignment = _balanced_assign(lay, n, labelers, 3, forced=anchor_labelers)

    items: list[DemoItem] = []
    annotations: list[DemoAnnotation] = []
    for i, ((spec, terminal), device, captured) in enumerate(
        zip(UTTERANCES, devices, times, strict=True)
    ):
        rng = _rng(seed, _S_SPEECH, 1000 + i)
        tokens = tokenize(spec)
        external_id = f"call-{i + 1:04d}"
        words = len(tokens)
        items.append(
            DemoItem(
                external_id=external_id,
                image_png=None,
                text=asr_draft(tokens, rng, device),
                metadata={
                    "device": device,
                    "noise": DEVICE_NOISE[device],
                    "duration_s": round(0.45 * words + float(rng.uniform(0.3, 1.2)), 2),
                    "captured_at": _iso(captured),
                    "language": "en-GB",
                },
                tags=["car_noise"] if device == "car" else [],
                truth=render(tokens, terminal, "comma"),
                severity=None,
            )
        )
        for username in assignment[i]:
            t = TRANSCRIBERS[labelers.index(username)]
            lrng = _rng(seed, _S_SPEECH_LABEL, i, labelers.index(username))
            value = transcribe(t, tokens, terminal, device, lrng, exact=(i == 0))
            spent = (8 + 2.5 * words) * t.speed * (1.6 if device == "car" else 1.0)
            spent *= float(lrng.lognormal(0.0, 0.25))
            annotations.append(
                DemoAnnotation(
                    item=external_id,
                    labeler=username,
                    value=value,
                    time_spent_s=round(spent, 1),
                    guideline_version=1,
                    created_at=_labelled_at(lrng, captured, None),
                    comment="lots of road noise" if device == "car" and lrng.random() < 0.2 else "",
                )
            )
    annotations.sort(key=lambda a: (a.created_at, a.item, a.labeler))
    gold = [
        DemoGold(it.external_id, it.truth, SME, START + timedelta(days=N_DAYS + 3, minutes=k))
        for k, it in enumerate(items[:6])
    ]
    guideline = DemoGuideline(
        version=1,
        title="Call-centre snippets v1",
        text=(
            "# Call-centre snippets (v1)\n\n"
            "Correct the ASR draft so it matches what the caller says.\n\n"
            "- Write what you hear, in sentence case.\n"
            "- Spell numbers as words.\n"
        ),
        examples=[items[0].external_id, items[3].external_id],
        published_at=START - timedelta(days=3),
    )
    return DemoProject(
        name="Call-centre snippets",
        slug=SPEECH_PROJECT_SLUG,
        task_type="transcription",
        level="nominal",
        overlap=3,
        description=(
            "Short caller utterances. No audio in the demo: the payload text is the ASR "
            "draft that transcribers correct. The v1 guideline does not say how to write "
            "filler words, so transcripts disagree on conventions."
        ),
        classes=[],
        guidelines=[guideline],
        items=items,
        annotations=annotations,
        gold=gold,
    )


# --------------------------------------------------------------------------- users


def _users() -> list[DemoUser]:
    both = (IMAGE_PROJECT_SLUG, SPEECH_PROJECT_SLUG, BOX_PROJECT_SLUG)
    users = [
        DemoUser(
            MANAGER,
            "Demo Admin",
            "admin@example.com",
            is_superuser=True,
            persona="ML engineer / manager",
            roles=dict.fromkeys(both, "manager"),
        ),
        DemoUser(
            SME,
            "Sam Expert",
            "sme@example.com",
            persona="quality engineer: reviews flags, sets gold labels",
            roles=dict.fromkeys(both, "sme"),
        ),
    ]
    speech = {t.username: t for t in TRANSCRIBERS}
    for p in IMAGE_LABELERS:
        roles = {IMAGE_PROJECT_SLUG: "labeler"}
        persona = p.persona
        if p.username in speech:
            roles[SPEECH_PROJECT_SLUG] = "labeler"
            persona += f"; transcripts: {speech[p.username].persona}"
        if p.username in BOX_LABELERS:
            roles[BOX_PROJECT_SLUG] = "labeler"
            persona += f"; {BOX_PERSONAS[p.username]}"
        users.append(
            DemoUser(p.username, p.full_name, f"{p.username}@example.com", False, persona, roles)
        )
    return users


@functools.lru_cache(maxsize=4)
def build_demo(seed: int = 7, n_images: int = 320) -> DemoData:
    """Build both demo projects and their users; identical output for the same seed.

    Drawing the images takes seconds, so results are cached per (seed, n_images): treat
    the returned data as read-only.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError("seed must be a non-negative int")
    if n_images < MIN_IMAGES:
        raise ValueError(f"n_images must be at least {MIN_IMAGES}")
    return DemoData(
        seed=seed,
        projects=[
            _image_project(seed, n_images),
            _speech_project(seed),
            box_project(
                seed,
                n_images,
                cameras=CAMERAS,
                factories=FACTORIES,
                start=START,
                captured_at=_capture_times,
            ),
        ],
        users=_users(),
    )


def fingerprint(data: DemoData) -> str:
    """SHA-256 over everything in ``data`` (image bytes hashed, datetimes as ISO), e.g.
    to tell whether a database already holds this exact demo."""

    def default(o):
        if isinstance(o, bytes):
            return "sha256:" + hashlib.sha256(o).hexdigest()
        if isinstance(o, datetime):
            return o.isoformat()
        raise TypeError(type(o))

    blob = json.dumps(asdict(data), sort_keys=True, default=default, ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


__all__ = [
    "BORDERLINE",
    "CAMERAS",
    "DARK_CAMERA",
    "IMAGE_CLASSES",
    "BOX_PROJECT_SLUG",
    "IMAGE_PROJECT_SLUG",
    "MANAGER",
    "SME",
    "SPEECH_PROJECT_SLUG",
    "boundary_closeness",
    "build_demo",
    "fingerprint",
]
