"""score: a tiny lexicon sentiment score per sentence, from -1 (negative) to 1 (positive)."""
import re

POSITIVE = {"good", "great", "excellent", "love", "happy", "wonderful", "fast", "clean", "nice",
            "best", "enjoy", "like", "easy", "delightful"}
NEGATIVE = {"bad", "terrible", "awful", "hate", "sad", "slow", "broken", "worst", "ugly",
            "hard", "boring", "poor", "angry", "buggy"}
_WORD = re.compile(r"[a-z']+")


def score(payload):
    words = _WORD.findall(payload["sentence"].lower())
    positive = sum(w in POSITIVE for w in words)
    negative = sum(w in NEGATIVE for w in words)
    total = positive + negative
    return dict(payload, score=0.0 if total == 0 else round((positive - negative) / total, 3))
