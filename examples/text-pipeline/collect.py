"""collect: the join of the sentences of one document (spec.join in collect.yaml).

A pure function: the sidecar keeps the scored sentences of each document in its join store and
calls this handler once per document, with the list of all of them in the order split returned
them. Nothing lives in this process between calls, so the actor scales to several replicas and
a restart loses nothing. A sentence whose scoring failed arrives as the error-end payload shape
({"error", "details", "actor", "original_payload"}) in its slot.
"""


def collect(sentences):
    scored = [s for s in sentences if "error" not in s]
    failed = len(sentences) - len(scored)
    average = round(sum(s["score"] for s in scored) / len(scored), 3) if scored else 0.0
    label = "positive" if average > 0.1 else "negative" if average < -0.1 else "neutral"
    summary = {"sentences": len(sentences), "average": average, "label": label}
    if failed:
        summary["failed"] = failed
    return {
        "doc": next((s.get("doc") or s.get("original_payload", {}).get("doc") for s in sentences), None),
        "summary": summary,
        "sentences": [{"text": s["sentence"], "score": s["score"]} for s in scored],
    }
