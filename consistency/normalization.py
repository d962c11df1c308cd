"""Label standardisation for transcription projects: SME-defined rewrite rules (pure).

A rule set is an ordered list of rules, each a plain dict (that is how it is stored)::

    {"find": "Umm", "replace": "Um", "regex": false, "case_sensitive": false,
     "whole_word": true, "note": "one spelling for the filler"}

Rules apply in order, each to the output of the previous one. ``find`` is literal text
unless ``regex`` is true; the replacement may then use ``\\1`` and ``\\g<name>`` groups.
``whole_word`` only matches where ``find`` is not glued to another letter or digit on
either side.

Regular expressions come from users, so they run on RE2 (``google-re2``), whose time is
linear in the text: a pattern such as ``((.+)+)+X`` that would keep Python's backtracking
``re`` busy for hours finishes at once. RE2 has no backreferences in patterns and no
lookarounds; such patterns are refused when the rule is checked. Its ``\\w``, ``\\d`` and
``\\b`` are ASCII-only (use ``\\pL`` for letters of any script). Literal rules are escaped
and run on ``re``, where they cannot backtrack. Nothing here imports Django;
``review.services`` publishes rule sets as versioned ``consistency.TranscriptRuleSet`` rows.

>>> rules = validate_rules([{"find": "Umm", "replace": "Um", "whole_word": True},
...                         {"find": "...", "replace": ","}])
>>> apply_rules("Umm... I think so. Ummm no", rules)
'Um, I think so. Ummm no'
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import re2

MAX_RULES = 100
MAX_PATTERN_CHARS = 300
MAX_PREVIEW_CHANGES = 500


@dataclass(frozen=True)
class Rule:
    find: str
    replace: str = ""
    regex: bool = False
    case_sensitive: bool = True
    whole_word: bool = False
    note: str = ""

    def compiled(self):
        """The compiled pattern: ``re`` for literal text, RE2 for a user's regex.

        Raises ``re.error`` / ``re2.error`` when the pattern does not compile.
        """
        if not self.regex:
            body = re.escape(self.find)
            if self.whole_word:
                body = rf"(?<!\w)(?:{body})(?!\w)"
            return re.compile(body, 0 if self.case_sensitive else re.IGNORECASE)
        options = re2.Options()
        options.case_sensitive = self.case_sensitive
        options.log_errors = False
        return re2.compile(self.find, options)

    def as_dict(self) -> dict:
        return asdict(self)


def _bool(value, name: str, index: int) -> bool:
    if isinstance(value, bool):
        return value
    if value in (None, "", 0, "0", "false", "off", "no"):
        return False
    if value in (1, "1", "true", "on", "yes"):
        return True
    raise ValueError(f"rule {index + 1}: {name} must be true or false")


def validate_rules(raw: Sequence[Mapping | Rule]) -> list[Rule]:
    """Check a rule set and return it as :class:`Rule` objects.

    Raises ValueError naming the rule (1-based) at fault: empty ``find``, a pattern
    longer than ``MAX_PATTERN_CHARS``, a regex that does not compile, a replacement that
    refers to a group the regex does not have, or more than ``MAX_RULES`` rules.
    """
    if not isinstance(raw, list | tuple):
        raise ValueError("rules must be a list")
    if len(raw) > MAX_RULES:
        raise ValueError(f"at most {MAX_RULES} rules, got {len(raw)}")
    rules = []
    for i, given in enumerate(raw):
        spec = given.as_dict() if isinstance(given, Rule) else given
        if not isinstance(spec, Mapping):
            raise ValueError(f"rule {i + 1}: must be an object with find and replace")
        unknown = set(spec) - {"find", "replace", "regex", "case_sensitive", "whole_word", "note"}
        if unknown:
            raise ValueError(f"rule {i + 1}: unknown fields {sorted(unknown)}")
        find, replace = spec.get("find"), spec.get("replace", "")
        if not isinstance(find, str) or find == "":
            raise ValueError(f"rule {i + 1}: find must be non-empty text")
        if not isinstance(replace, str):
            raise ValueError(f"rule {i + 1}: replace must be text")
        if len(find) > MAX_PATTERN_CHARS or len(replace) > MAX_PATTERN_CHARS:
            raise ValueError(f"rule {i + 1}: find/replace longer than {MAX_PATTERN_CHARS}")
        rule = Rule(
            find=find,
            replace=replace,
            regex=_bool(spec.get("regex", False), "regex", i),
            case_sensitive=_bool(spec.get("case_sensitive", True), "case_sensitive", i),
            whole_word=_bool(spec.get("whole_word", False), "whole_word", i),
            note=str(spec.get("note", ""))[:200],
        )
        try:
            pattern = rule.compiled()
        except (re.error, re2.error) as exc:
            reason = exc.args[0].decode() if isinstance(exc.args[0], bytes) else str(exc)
            raise ValueError(
                f"rule {i + 1}: not a valid regular expression ({reason}; backreferences "
                "and lookarounds are not supported)"
            ) from exc
        if rule.regex:
            for ref in re.findall(r"\\(\d+)|\\g<(\w+)>", replace):
                num, name = ref
                if num and int(num) > pattern.groups:
                    raise ValueError(f"rule {i + 1}: replacement uses group {num}, regex has "
                                     f"{pattern.groups}")  # fmt: skip
                if name and not name.isdigit() and name not in pattern.groupindex:
                    raise ValueError(f"rule {i + 1}: replacement uses unknown group {name!r}")
        rules.append(rule)
    return rules


def _glued(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] touches a word character (``\\w`` of ``re``) on a side."""

    def word(ch: str) -> bool:
        return ch.isalnum() or ch == "_"

    return (start > 0 and word(text[start - 1])) or (end < len(text) and word(text[end]))


def _sub(rule: Rule, pattern, text: str) -> tuple[str, int]:
    if not rule.regex:
        return pattern.subn(lambda _m: rule.replace, text)  # literal: no backslash escapes
    if not rule.whole_word:
        return pattern.subn(rule.replace, text)
    # RE2 has no lookarounds: whole-word regex matches glued to a word are left as they are.
    count = 0

    def replace(match) -> str:
        nonlocal count
        if _glued(text, match.start(), match.end()):
            return match.group(0)
        count += 1
        return match.expand(rule.replace)

    out, _ = pattern.subn(replace, text)
    return out, count


def apply_rules(text: str, rules: Sequence[Mapping | Rule]) -> str:
    """``text`` after every rule, in order."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    for rule in validate_rules(list(rules)):
        text, _ = _sub(rule, rule.compiled(), text)
    return text


def normalize_texts(texts: Sequence[str], rules: Sequence[Mapping | Rule]) -> list[str]:
    """Apply ``rules`` to many texts (rules compiled once)."""
    compiled = [(r, r.compiled()) for r in validate_rules(list(rules))]
    out = []
    for original in texts:
        text = original
        for rule, pattern in compiled:
            text, _ = _sub(rule, pattern, text)
        out.append(text)
    return out


def preview(
    texts: Sequence[str],
    rules: Sequence[Mapping | Rule],
    *,
    refs: Sequence | None = None,
    max_changes: int = MAX_PREVIEW_CHANGES,
) -> dict:
    """What ``rules`` would change in ``texts``.

    Parameters
    ----------
    texts : sequence of str, length N
    rules : rule set
    refs : sequence, length N, optional
        What each text is (e.g. ``{"item": ..., "labeler": ...}``), echoed in changes.
    max_changes : int
        At most this many ``changes`` rows are listed (counts cover all texts).

    Returns
    -------
    dict
        ``{n_texts, n_changed, per_rule: [{rule, find, replace, n_texts, n_replacements}],
        changes: [{ref, before, after}], truncated}`` — a rule's counts are taken on the
        text as the earlier rules left it.
    """
    compiled = [(r, r.compiled()) for r in validate_rules(list(rules))]
    refs = list(refs) if refs is not None else list(range(len(texts)))
    if len(refs) != len(texts):
        raise ValueError(f"{len(refs)} refs for {len(texts)} texts")
    per_rule = [
        {"rule": i + 1, "find": r.find, "replace": r.replace, "n_texts": 0, "n_replacements": 0}
        for i, (r, _) in enumerate(compiled)
    ]
    changes, n_changed = [], 0
    for ref, original in zip(refs, texts, strict=True):
        text = original
        for i, (rule, pattern) in enumerate(compiled):
            text, n = _sub(rule, pattern, text)
            if n:
                per_rule[i]["n_texts"] += 1
                per_rule[i]["n_replacements"] += n
        if text != original:
            n_changed += 1
            if len(changes) < max_changes:
                changes.append({"ref": ref, "before": original, "after": text})
    return {
        "n_texts": len(texts),
        "n_changed": n_changed,
        "per_rule": per_rule,
        "changes": changes,
        "truncated": n_changed > len(changes),
    }
