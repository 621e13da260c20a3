"""Handlers shared by the runtime conformance suite (tests/runtime_conformance).

The Python runtime loads them as ASYA_HANDLER=conformance_handlers.<name>; the C++ conformance
runtime (cpp_runtime/) implements handlers with the same names and the same behaviour, so one
pytest suite can check both runtimes against PROTOCOL section 3. Keep the two in step.
"""

import time


def echo(payload):
    """{"message": m} -> {"echoed": m}; any other payload is returned unchanged."""
    if isinstance(payload, dict) and "message" in payload:
        return {"echoed": payload["message"]}
    return payload


def fanout(payload):
    """payload.count (default 3) outputs: the payload plus "index": i, "message": "Fan-out message i"."""
    count = payload.get("count", 3)
    outputs = []
    for index in range(count):
        item = dict(payload)
        item["index"] = index
        item["message"] = "Fan-out message %d" % index
        outputs.append(item)
    return outputs


def abort_none(payload):
    """Returns None: nothing further (the response is [])."""
    return None


def abort_empty(payload):
    """Returns []: nothing further (the response is [])."""
    return []


def fail(payload):
    """Always raises ValueError("Intentional test failure")."""
    raise ValueError("Intentional test failure")


def sleep(payload):
    """Sleeps payload.sleep_seconds (default 0), then returns the payload."""
    time.sleep(payload.get("sleep_seconds", 0))
    return payload


def big(payload):
    """{"size": n, "data": "X" * n} with n = payload.size_bytes."""
    size = payload["size_bytes"]
    return {"size": size, "data": "X" * size}


class Counter:
    """process() returns {"count": k}, k = 1, 2, 3, ... per call since the runtime started."""

    def __init__(self, start=0):
        self.calls = start

    def process(self, payload):
        self.calls += 1
        return {"count": self.calls}


def envelope_edit(envelope):
    """Envelope mode: edits the envelope's route as payload.edit says (some edits are forbidden)."""
    edit = envelope["payload"].get("edit", "next")
    route = envelope["route"]
    actors = list(route["actors"])
    current = route.get("current", 0)
    out = dict(envelope)
    out["route"] = dict(route)
    if edit == "next":
        out["route"]["current"] = current + 1
    elif edit == "append":
        out["route"]["actors"] = actors + ["extra"]
        out["route"]["current"] = current + 1
    elif edit == "replace_future":
        out["route"]["actors"] = actors[: current + 1] + ["other"]
        out["route"]["current"] = current + 1
    elif edit == "change_past":
        out["route"]["actors"] = ["hacked"] + actors[1:]
    elif edit == "change_current":
        changed = list(actors)
        changed[current] = "other"
        out["route"]["actors"] = changed
    elif edit == "drop_payload":
        del out["payload"]
        out["route"]["current"] = current + 1
    elif edit == "bad_route":
        out["route"] = "nope"
    elif edit == "fanout":
        out["route"]["current"] = current + 1
        second = dict(out)
        second["route"] = dict(out["route"])
        return [out, second]
    elif edit == "beyond_end":
        out["route"]["current"] = len(actors) + 1
    else:
        raise ValueError("unknown edit %r" % (edit,))
    return out


def batch_mixed(payloads):
    """A batch handler (ASYA_HANDLER_BATCH=true): per payload {"do": ...}: "echo" -> {"n": n},
    "abort" -> None, "fail" -> a ValueError("item n failed") instance, "fanout" -> two outputs
    {"n": n, "i": 0|1}. Any payload "raise" makes the whole call raise ValueError("batch failed");
    any "short" returns one result too few."""
    dos = [p.get("do") for p in payloads]
    if "raise" in dos:
        raise ValueError("batch failed")
    results = []
    for p in payloads:
        do, n = p.get("do"), p.get("n")
        if do == "abort":
            results.append(None)
        elif do == "fail":
            results.append(ValueError("item %s failed" % n))
        elif do == "fanout":
            results.append([{"n": n, "i": 0}, {"n": n, "i": 1}])
        else:
            results.append({"n": n})
    if "short" in dos:
        results.pop()
    return results


_batch_calls = [0]


def batch_numbered(payloads):
    """A batch handler (ASYA_HANDLER_BATCH=true) that numbers its calls: per payload {"n": n} ->
    {"n": n, "call": k}, k the number of calls before this one (0 for the first)."""
    call = _batch_calls[0]
    _batch_calls[0] += 1
    return [{"n": p.get("n"), "call": call} for p in payloads]


def batch_envelopes(envelopes):
    """An envelope-mode batch handler (Python only): per envelope, payload {"do": ...}: "next" ->
    the envelope with route.current + 1, "abort" -> None, "past" -> an output that changes the
    route's past (rejected for that item alone), "fail" -> a KeyError instance."""
    results = []
    for envelope in envelopes:
        do = envelope["payload"].get("do")
        if do == "abort":
            results.append(None)
        elif do == "fail":
            results.append(KeyError("missing"))
        else:
            out = dict(envelope)
            route = dict(envelope["route"])
            route["current"] = route.get("current", 0) + 1
            if do == "past":
                route["actors"] = ["hacked"] + route["actors"][1:]
            out["route"] = route
            results.append(out)
    return results
