"""split: one document in, one message per sentence out (fan-out).

Returning a list makes the sidecar send each item on as its own envelope; the first keeps the
document's envelope id, the others get <id>-1, <id>-2, ... Each carries its place in the group
(index and count), so the join actor `collect` gets them back as one list, in this order.
"""
import hashlib
import re

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split(payload):
    text = str(payload.get("text", "")).strip()
    doc = payload.get("doc") or hashlib.sha1(text.encode()).hexdigest()[:12]
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    if not sentences:
        raise ValueError("the document has no text: send {\"text\": \"...\"}")
    return [{"doc": doc, "sentence": s} for s in sentences]
