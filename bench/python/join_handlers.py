"""Handlers of bench/run's join section: a fan-out of payload["n"] and its join."""


def fan(payload):
    return [{"i": i} for i in range(payload["n"])]


def join(parts):
    return {"joined": len(parts)}
