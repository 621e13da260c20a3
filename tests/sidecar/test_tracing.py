"""Trace spans of the sidecar (docs/tracing.md): real sidecars and runtimes export OTLP/HTTP JSON
to a receiver inside the test (otlp_receiver.py); the trace is checked as a whole: one trace, every
parent present, children inside their hop, output envelopes naming their publish span."""
import json
import re
import subprocess

import pytest

from otlp_receiver import OtlpReceiver
from sidecar_harness import free_port, wait_for
from test_sidecar import HAPPY, envelope

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ROOT_SPAN = "00f067aa0ba902b7"
ROOT = "00-%s-%s-01" % (TRACE, ROOT_SPAN)
FAST = {"OTEL_BSP_SCHEDULE_DELAY": "50"}


def by_id(spans):
    ids = {}
    for s in spans:
        assert s["spanId"] not in ids, "span id %s used twice" % s["spanId"]
        ids[s["spanId"]] = s
    return ids


def hops(spans, actor=None):
    return [s for s in spans if s["name"].startswith("process ") and
            (actor is None or s.resource["asya.actor"] == actor)]


def test_pipeline_with_fan_out_gives_one_connected_trace(cluster):
    receiver = OtlpReceiver()
    try:
        env = dict(FAST, ASYA_OTLP_ENDPOINT=receiver.url)
        cluster.actor("split", "fanout", env=env)
        cluster.actor("infer", "enrich", env=env)
        cluster.actor("post", "enrich", env=env)
        end = cluster.actor("happy-end", runtime=False, env=dict(env, ASYA_LOG_LEVEL="debug"))
        cluster.queues.send("asya-split", envelope("T1", ["split", "infer", "post"], payload={"n": 2, "tag": "t"},
                                                   headers={"traceparent": ROOT}, job="J1"))
        # split once, then two branches through infer, post and happy-end.
        spans = wait_for(lambda: (lambda s: s if len(hops(s)) == 7 else None)(receiver.snapshot()), 60,
                         "7 hop spans (split, 2 x infer, post, happy-end)")
        ids = by_id(spans)

        # One trace; every parent exists (the root is the traceparent the envelope came with).
        assert {s["traceId"] for s in spans} == {TRACE}
        for s in spans:
            assert s.get("parentSpanId") in ids or s.get("parentSpanId") == ROOT_SPAN, s
            assert s["service"] == "asya-sidecar"
            # The actor and replica are the sidecar's: resource attributes of its requests, not
            # repeated in every span.
            assert s.resource["asya.actor"] in ("split", "infer", "post", "happy-end"), s.resource
            assert re.fullmatch(r".+:\d+", s.resource["asya.replica"]), s.resource
            assert "asya.actor" not in s.attrs and "asya.replica" not in s.attrs, s.attrs
        split, = hops(spans, "split")
        assert split["parentSpanId"] == ROOT_SPAN and split["kind"] == 5

        # Inside a hop: runtime call, publish(es) and ack are its children, within it, naming it.
        for hop in hops(spans):
            children = [s for s in spans if s.get("parentSpanId") == hop["spanId"]]
            names = sorted(c["name"] for c in children)
            assert "ack" in names, (hop["name"], names)
            if hop.resource["asya.actor"] != "happy-end":
                assert "runtime call" in names and any(n.startswith("publish ") for n in names), names
            for c in children:
                assert hop.start <= c.start <= c.end <= hop.end, (hop["name"], c["name"], hop, c)
                assert c.resource == hop.resource, (c, hop)
                for key in ("asya.envelope_id", "asya.delivery_count", "asya.job_id"):
                    assert c.attrs[key] == hop.attrs[key], (key, c, hop)
            attrs = hop.attrs
            for key in ("asya.envelope_id", "asya.delivery_count",
                        "asya.payload_bytes", "asya.outcome"):
                assert key in attrs, (key, attrs)
            assert attrs["asya.job_id"] == "J1" and attrs["asya.outcome"] == "success"
            assert attrs["asya.delivery_count"] == 1
            if hop is not split:  # sent by a sidecar: asya-sent-at gives the queue wait
                sender = ids[hop["parentSpanId"]]  # the publish span, which began at asya-sent-at
                assert 0 <= attrs["asya.queue_wait_ms"] <= (hop.start - sender.start) / 1e6 + 1
            else:
                assert "asya.queue_wait_ms" not in attrs  # asya-queue sets no asya-sent-at

        # Across hops: each hop's parent is the publish span of the hop before it, which the
        # envelope named in its traceparent; fan-out branches hang off two publish spans of split.
        publishes = [s for s in spans if s["name"].startswith("publish ")]
        assert len(publishes) == 2 + 2 + 2  # split -> infer x2, infer -> post x2, post -> happy-end x2
        previous = {"infer": "split", "post": "infer", "happy-end": "post"}
        for actor, before in previous.items():
            for hop in hops(spans, actor):
                publish = ids[hop["parentSpanId"]]
                assert publish["name"] == "publish asya-" + actor and publish["kind"] == 4
                assert ids[publish["parentSpanId"]]["name"] == "process " + before
                assert publish.attrs["asya.output_envelope_id"] == hop.attrs["asya.envelope_id"]
                assert publish.start <= hop.start  # the hop starts at asya-sent-at, after the stamp
        assert len({h["parentSpanId"] for h in hops(spans, "infer")}) == 2
        assert sorted(h.attrs["asya.envelope_id"] for h in hops(spans, "infer")) == ["T1", "T1-1"]

        # The stored results carry the trace context of their last publish span.
        for id_ in ("T1", "T1-1"):
            path = cluster.results / (id_ + ".json")
            wait_for(path.exists, 30, "result " + id_)
            stored = json.loads(path.read_text())
            m = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01", stored["headers"]["traceparent"])
            assert m and m.group(1) == TRACE, stored["headers"]
            publish = ids[m.group(2)]
            assert publish["name"] == "publish asya-happy-end"
            assert publish.attrs["asya.output_envelope_id"] == id_
            assert ids[publish["parentSpanId"]].resource["asya.actor"] == "post"
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stored["headers"]["asya-sent-at"])

        # Log lines carry the trace and span of their hop.
        end_hops = {h["spanId"] for h in hops(spans, "happy-end")}
        logged = [json.loads(line) for line in end.sidecar.text().splitlines()
                  if line.startswith("{") and '"trace_id"' in line]
        assert logged, end.sidecar.text()[-2000:]
        assert {line["trace_id"] for line in logged} == {TRACE}
        assert {line["span_id"] for line in logged} <= end_hops
    finally:
        receiver.close()


def test_collector_down_loses_no_message_and_counts_dropped_spans(cluster):
    closed = free_port()  # nothing listens there
    env = dict(FAST, ASYA_OTLP_ENDPOINT="http://127.0.0.1:%d" % closed, OTEL_BSP_MAX_QUEUE_SIZE="4")
    actor = cluster.actor("echo", "echo", env=env)
    for i in range(10):
        cluster.queues.send("asya-echo", envelope("D%d" % i, ["echo"], payload={"i": i},
                                                  headers={"traceparent": ROOT}))
    outs = cluster.queues.collect(HAPPY, 10)
    assert sorted(m["json"]["id"] for m in outs) == ["D%d" % i for i in range(10)]
    # Outputs still get their own trace context.
    for m in outs:
        assert m["json"]["headers"]["traceparent"].startswith("00-%s-" % TRACE)

    def dropped():
        text = actor.metrics()
        total = sum(float(v) for v in re.findall(
            r'^asya_trace_spans_dropped_total\{destination="collector",reason="[a-z_]+"\} (\S+)$', text, re.M))
        return text if total == 10 * 4 else None  # 10 hops x (hop, runtime call, publish, ack)
    text = wait_for(dropped, 60, "all 40 spans of the 10 messages counted as dropped")
    assert re.search(r'reason="queue_full"\} [1-9]', text) or re.search(r'reason="export_failed"\} [1-9]', text)
    assert 'asya_trace_spans_exported_total{destination="collector"} 0' in text.splitlines()
    promtool = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True)
    assert promtool.returncode == 0, promtool.stdout + promtool.stderr


def test_spans_of_gateway_jobs_go_to_the_gateway_and_nothing_else_does(cluster, gateway):
    env = dict(FAST, ASYA_GATEWAY_URL=gateway.url, ASYA_GATEWAY_INTERNAL_TOKEN="tok")
    cluster.actor("echo", "echo", env=env)
    cluster.queues.send("asya-echo", envelope("plain", ["echo"], payload={}, headers={"traceparent": ROOT}))
    cluster.queues.send("asya-echo", envelope("G1", ["echo"], payload={}, headers={"traceparent": ROOT}, job="G1"))
    outs = {m["json"]["id"]: m["json"] for m in cluster.queues.collect(HAPPY, 2)}

    def traces():
        return [body for path, body in gateway.snapshot() if path == "/v1/traces"]
    posted = wait_for(lambda: traces() or None, 30, "spans posted to the gateway's /v1/traces")
    spans = [s for body in posted for rs in body["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    envelope_ids = {a["value"]["stringValue"] for s in spans for a in s["attributes"] if a["key"] == "asya.envelope_id"}
    assert envelope_ids == {"G1"}, envelope_ids
    assert all(any(a["key"] == "asya.job_id" for a in s["attributes"]) for s in spans), spans
    # Without a collector, an envelope no one traces passes through unchanged.
    assert outs["plain"]["headers"] == {"traceparent": ROOT}
    assert outs["G1"]["headers"]["traceparent"] != ROOT


BATCH_ENV = {"ASYA_BATCH_MAX_SIZE": "16", "ASYA_BATCH_MAX_WAIT": "50ms", "ASYA_HANDLER_BATCH": "true"}


@pytest.mark.parametrize("max_size", ["16", "3"], ids=["partial-batches", "full-batches"])
def test_every_item_of_a_batch_is_a_hop_of_its_own_trace(cluster, max_size):
    """Batching (docs/tracing.md "Batches"): each item of a batch gets the spans a message alone
    gets, as a child of its own traceparent; the batch's one runtime call is a child of every item's
    hop (same start and end, asya.batch_size and asya.batch_index); every output names its own
    publish span. With maxSize 3 the 6 queued items come in full batches, which the sidecar settles
    on its background thread (docs/sidecar.md): their publish and ack spans are still recorded."""
    receiver = OtlpReceiver()
    try:
        roots = {}  # envelope id -> (trace id, parent span id)
        for i in range(6):
            roots["B%d" % i] = ("%032x" % (0xB0 + i), "%016x" % (0xC0 + i))
            cluster.queues.send("asya-echo", envelope(
                "B%d" % i, ["echo"], payload={"i": i, "fail": i == 3},
                headers={"traceparent": "00-%s-%s-01" % roots["B%d" % i]}, job="J%d" % i))
        # Queued before the sidecar starts, so they are gathered into batches.
        cluster.actor("echo", "batch_echo", env=dict(BATCH_ENV, **FAST, ASYA_OTLP_ENDPOINT=receiver.url,
                                                     ASYA_BATCH_MAX_SIZE=max_size))
        outs = {m["json"]["id"]: m["json"] for m in cluster.queues.collect(HAPPY, 5, timeout=60)}
        outs.update({m["json"]["id"]: m["json"] for m in cluster.queues.collect("asya-error-end", 1, timeout=60)})
        assert sorted(outs) == sorted(roots)
        spans = wait_for(lambda: (lambda s: s if len(hops(s)) == 6 and
                                  sum(x["name"] == "ack" for x in s) == 6 else None)(receiver.snapshot()),
                         60, "6 hop spans and their acks")
        ids = by_id(spans)
        calls = []
        for hop in hops(spans):
            id_ = hop.attrs["asya.envelope_id"]
            trace, parent = roots[id_]
            assert hop["traceId"] == trace and hop["parentSpanId"] == parent, (id_, hop)
            assert hop.attrs["asya.job_id"] == "J" + id_[1:]
            assert hop.attrs["asya.outcome"] == ("error" if id_ == "B3" else "success"), hop
            children = {c["name"]: c for c in spans if c.get("parentSpanId") == hop["spanId"]}
            queue = "asya-error-end" if id_ == "B3" else HAPPY
            assert sorted(children) == sorted(["runtime call", "publish " + queue, "ack"]), children
            for c in children.values():
                assert c["traceId"] == trace and hop.start <= c.start <= c.end <= hop.end, (hop, c)
                assert c.attrs["asya.envelope_id"] == id_
            call = children["runtime call"]
            assert call.attrs["asya.runtime_result"] == ("processing_error" if id_ == "B3" else "ok")
            calls.append(call)
            # The output carries its own trace context: this trace, its publish span.
            publish = children["publish " + queue]
            assert publish.attrs["asya.output_envelope_id"] == id_
            assert outs[id_]["headers"]["traceparent"] == "00-%s-%s-01" % (trace, publish["spanId"])
            assert "asya-sent-at" in outs[id_]["headers"]
            assert ids[publish["spanId"]] is publish
        # The spans of one runtime call share its start and end; their number is its batch size,
        # and each item has its own index in it.
        batches = {}
        for call in calls:
            batches.setdefault((call.start, call.end), []).append(call)
        assert sum(len(b) for b in batches.values()) == 6
        for batch in batches.values():
            assert {c.attrs["asya.batch_size"] for c in batch} == {len(batch)}, batch
            assert sorted(c.attrs["asya.batch_index"] for c in batch) == list(range(len(batch)))
        assert max(len(b) for b in batches.values()) > 1, batches
    finally:
        receiver.close()


def test_a_backlog_settled_in_groups_keeps_every_hops_publish_and_ack_spans(cluster):
    """On SQLite a fast actor leases a backlog in groups and settles each group in one transaction
    after its last message (src/sidecar/runner_defer.cpp); each traced hop leaves the worker's
    thread meanwhile and records its own publish and ack spans when the group settles. Every hop
    still has its runtime call, publish and ack inside it, and every output names its own hop's
    publish span."""
    if cluster.transport != "sqlite":
        pytest.skip("groups are settled together on the sqlite transport only")
    receiver = OtlpReceiver()
    try:
        count = 60
        actor = cluster.actor("fast", "echo", start_sidecar=False,
                              env=dict(FAST, ASYA_OTLP_ENDPOINT=receiver.url))
        parents = {}
        for i in range(count):
            parents["G%02d" % i] = "%016x" % (0x1000 + i)
        cluster.queues.send_many("asya-fast", [
            envelope(id_, ["fast"], payload={"i": id_},
                     headers={"traceparent": "00-%s-%s-01" % (TRACE, span)})
            for id_, span in parents.items()])
        actor.start_sidecar()
        outputs = cluster.queues.collect(HAPPY, count, timeout=120)
        spans = wait_for(lambda: (lambda s: s if len(hops(s)) == count else None)(receiver.snapshot()),
                         60, "%d hop spans" % count)
        ids = by_id(spans)
        for hop in hops(spans):
            assert hop["parentSpanId"] == parents[hop.attrs["asya.envelope_id"]]
            children = [s for s in spans if s.get("parentSpanId") == hop["spanId"]]
            assert sorted(c["name"] for c in children) == ["ack", "publish asya-happy-end", "runtime call"]
            for c in children:
                assert hop.start <= c.start <= c.end <= hop.end, (hop, c)
        for m in outputs:
            span = re.fullmatch(r"00-%s-([0-9a-f]{16})-01" % TRACE, m["json"]["headers"]["traceparent"]).group(1)
            publish = ids[span]
            assert publish.attrs["asya.output_envelope_id"] == m["json"]["id"]
            assert ids[publish["parentSpanId"]].attrs["asya.envelope_id"] == m["json"]["id"]
        # Some group was settled together: more than one send-and-ack per write transaction.
        text = actor.metrics()
        def total(name):
            return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))
        operations = total("asya_sqlite_group_commit_operations_total")
        batches = total("asya_sqlite_group_commit_batches_total")
        assert batches > 0 and operations / batches > 1.0, (operations, batches)
    finally:
        receiver.close()
