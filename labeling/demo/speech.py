"""The "Call-centre snippets" transcription project: utterances and transcriber personas.

There are no audio files in the demo.  Each item's payload is therefore its ``text``:
the **ASR draft** a transcriber would correct (lower case, no punctuation, with
recognition errors that are more frequent for noisy devices).  The reference
transcript in house style (fillers kept, ``Um, ...`` commas, sentence case and final
punctuation) is the item's hidden ``truth``.  The transcribers disagree mostly on
*conventions* (``Um, today's weather`` / ``Um... today's weather`` /
``Today's weather`` / ``um today's weather``), and sometimes on real words, more often
for calls from a car (tag ``car_noise``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# {filler} marks a filler word; the second field is the terminal punctuation ("" for
# a fragment).  The first one is the anchor example used in the guideline and tests.
UTTERANCES: tuple[tuple[str, str], ...] = (
    ("{um} today's weather", ""),
    ("{uh} I'm calling about my bill", "."),
    ("can you hear me okay", "?"),
    ("I was {uh} charged twice for the same order", "."),
    ("{um} my account number is four five two seven", "."),
    ("the internet keeps dropping out every evening", "."),
    ("{er} could you repeat that please", "?"),
    ("I'd like to cancel my subscription", "."),
    ("{um} I'm driving right now so {uh} bear with me", "."),
    ("the engineer never turned up on Tuesday", "."),
    ("{uh} is there a fee for changing the plan", "?"),
    ("I've been on hold for forty minutes", "."),
    ("{um} the reference is {uh} bravo seven two", "."),
    ("my new router has a red light", "."),
    ("{er} sorry you broke up there", "."),
    ("I want to upgrade to the faster package", "."),
    ("{um} when will the refund arrive", "?"),
    ("the app says my payment failed", "."),
    ("{uh} I moved house last month", "."),
    ("can I speak to a manager please", "?"),
    ("{um} the signal is really bad on the motorway", "."),
    ("I never received the confirmation email", "."),
    ("{uh} which address do you have on file", "?"),
    ("the bill went up by ten pounds", "."),
    ("{um} yes that's right", "."),
    ("I'll call back when I'm home", "."),
    ("{er} could you send it by text instead", "?"),
    ("my daughter set up the account", "."),
    ("{um} that's all thanks {uh} bye", "."),
    ("the storm warning cut my line", "."),
)

# Sound-alikes for genuine word errors (a word not listed is dropped instead).
SOUND_ALIKES: dict[str, str] = {
    "weather": "whether", "bill": "build", "hear": "here", "four": "for", "two": "to",
    "charged": "charge", "account": "amount", "right": "write", "line": "lime",
    "text": "next", "seven": "eleven", "bad": "bat", "forty": "fourteen", "ten": "then",
    "by": "buy", "warning": "morning", "minutes": "minute", "refund": "refill",
    "house": "how's", "router": "rooter", "fee": "free", "plan": "plant",
    "package": "packet", "manager": "manner", "failed": "filed", "order": "older",
    "evening": "even", "cancel": "council", "storm": "store", "file": "fine",
    "received": "receive", "pounds": "points", "light": "night", "set": "sat",
}  # fmt: skip

DEVICE_WORD_ERROR = {"headset": 0.01, "phone": 0.04, "car": 0.10}
ASR_WORD_ERROR = {"headset": 0.06, "phone": 0.12, "car": 0.30}
DEVICE_NOISE = {"headset": "low", "phone": "medium", "car": "high"}


@dataclass(frozen=True)
class TranscriberProfile:
    """``style``: ``comma`` (Um, ...), ``ellipsis`` (Um... ...), ``clean`` (fillers
    dropped) or ``lower`` (lower case, fillers kept, no punctuation)."""

    username: str
    style: str
    persona: str
    error_scale: float = 1.0
    speed: float = 1.0


TRANSCRIBERS: tuple[TranscriberProfile, ...] = (
    TranscriberProfile("labeler1", "ellipsis", "verbatim, marks hesitation with ..."),
    TranscriberProfile("labeler2", "comma", "verbatim in house style: 'Um, ...'"),
    TranscriberProfile("labeler3", "clean", "clean read: drops fillers", 0.8, 0.9),
    TranscriberProfile("labeler4", "lower", "fast: lower case, no punctuation", 1.5, 0.7),
)

Token = tuple[str, bool]  # (word, is_filler)


def tokenize(spec: str) -> list[Token]:
    out: list[Token] = []
    for w in spec.split():
        if w.startswith("{") and w.endswith("}"):
            out.append((w[1:-1], True))
        else:
            out.append((w, False))
    return out


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def render(tokens: list[Token], terminal: str, style: str) -> str:
    """Write a token list in one transcription convention."""
    if style == "lower":
        return " ".join(w.lower() for w, _ in tokens)
    if style == "clean":
        words = [w for w, f in tokens if not f]
        return _cap(" ".join(words)) + terminal if words else ""
    out: list[str] = []
    last = len(tokens) - 1
    for i, (w, f) in enumerate(tokens):
        if not f:
            out.append(w)
        elif style == "ellipsis":
            out.append(w + "...")
        elif style == "comma":
            if out and not out[-1].endswith(","):
                out[-1] += ","
            out.append(w if i == last else w + ",")
        else:
            raise ValueError(f"unknown style {style!r}")
    text = _cap(" ".join(out))
    if text.endswith("..."):
        return text  # trailing hesitation: no extra full stop
    return text + terminal


def corrupt(tokens: list[Token], rng: np.random.Generator, p_word: float) -> list[Token]:
    """Genuine word errors: each non-filler word is misheard with probability p_word."""
    out: list[Token] = []
    for w, f in tokens:
        if not f and rng.random() < p_word:
            alike = SOUND_ALIKES.get(w.lower())
            if alike is not None:
                out.append((alike, False))
            # else: the word is dropped
            continue
        out.append((w, f))
    return out


def asr_draft(tokens: list[Token], rng: np.random.Generator, device: str) -> str:
    """The machine draft shown to transcribers: lower case, fillers often lost."""
    kept = [(w, f) for w, f in tokens if not f or rng.random() < 0.5]
    return render(corrupt(kept, rng, ASR_WORD_ERROR[device]), "", "lower")


def transcribe(
    profile: TranscriberProfile,
    tokens: list[Token],
    terminal: str,
    device: str,
    rng: np.random.Generator,
    *,
    exact: bool = False,
) -> str:
    """One transcriber's transcript; ``exact`` suppresses word errors (anchor item)."""
    p = 0.0 if exact else DEVICE_WORD_ERROR[device] * profile.error_scale
    return render(corrupt(tokens, rng, p), terminal, profile.style)
