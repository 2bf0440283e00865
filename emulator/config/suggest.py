"""The nearest known name to a mistyped one, for "did you mean standard-1?" in messages."""

from __future__ import annotations

from collections.abc import Iterable
from difflib import SequenceMatcher

# difflib's own default: below it, names share too little for a suggestion to help.
_CUTOFF = 0.6


def nearest(word: str, names: Iterable[str]) -> str | None:
    """The name most like `word`, ignoring case; the first in `names` on a tie."""
    best: str | None = None
    best_score = _CUTOFF
    for name in names:
        matcher = SequenceMatcher(None, word.lower(), name.lower())
        score = matcher.ratio()
        if score > best_score or (best is None and score == best_score):
            best, best_score = name, score
    return best


def did_you_mean(word: str, names: Iterable[str]) -> str:
    """ "did you mean X? " for the nearest name, or "" when none is near."""
    found = nearest(word, names)
    return f"did you mean {found}? " if found is not None and found != word else ""
