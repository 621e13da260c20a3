"""collect: gathers the scored sentences of each document and emits one summary.

A class handler: the instance lives as long as the runtime, so it keeps the sentences seen so
far per document. Every sentence but the last one of a document returns None (the sentence's
envelope ends there, at happy-end); the last one returns the summary. Because the state lives in
one process, this actor runs at most one replica (maxReplicas: 1 in collect.yaml).
"""


class Collector:
    def __init__(self):
        self.pending = {}  # doc -> {index: scored sentence}

    def process(self, payload):
        parts = self.pending.setdefault(payload["doc"], {})
        parts[payload["index"]] = payload
        if len(parts) < payload["count"]:
            return None
        del self.pending[payload["doc"]]
        ordered = [parts[i] for i in sorted(parts)]
        average = round(sum(p["score"] for p in ordered) / len(ordered), 3)
        label = "positive" if average > 0.1 else "negative" if average < -0.1 else "neutral"
        return {
            "doc": payload["doc"],
            "summary": {"sentences": len(ordered), "average": average, "label": label},
            "sentences": [{"text": p["sentence"], "score": p["score"]} for p in ordered],
        }
