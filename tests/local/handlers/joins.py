"""Handlers of tests/local/test_join_up.py: a wide fan-out and its join."""


def wide(payload):
    return [{"i": i} for i in range(payload["n"])]


def square(payload):
    return {"i": payload["i"], "sq": payload["i"] * payload["i"]}


def total(parts):
    """A join: checks the branches arrived in fan-out order and sums them."""
    in_order = all(p["i"] == i for i, p in enumerate(parts))
    return {"count": len(parts), "in_order": in_order, "sum": sum(p["sq"] for p in parts)}
