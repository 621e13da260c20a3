"""Large payloads by reference (claim-check, docs/protocol.md §10) with real sidecars, real Python
runtimes and real transports: SQLite and RabbitMQ with a file store and 100 MB, SQS (moto) with an
S3 store (moto) and 50 MB. Handlers never see a reference; results hold the real payload; a
pass-through writes once; a fan-out stores each distinct payload once; a missing or changed object
goes to error-end as payload_unavailable; the lifetime rule deletes objects only after their
envelopes ended (plus the grace period), and sweeps what crashes leave behind."""
import hashlib
import json
import pathlib
import re
import signal
import time
import urllib.parse

import pytest

from sidecar_harness import moto_service, wait_for

HERE = pathlib.Path(__file__).resolve().parent
MB = 1024 * 1024
HAPPY = "asya-happy-end"


class Store:
    """The test's payload store: a directory (sqlite, rabbitmq) or a moto S3 bucket (sqs)."""

    def __init__(self, cluster, request):
        self.cluster = cluster
        if cluster.transport == "sqs":
            moto = request.getfixturevalue("moto_server")
            self.endpoint = moto.endpoint
            self.bucket = "asya-payloads"
            moto_service.s3_request("PUT", "%s/%s" % (self.endpoint, self.bucket))
            self.url = "s3://%s/run" % self.bucket
            self.dir = None
        else:
            self.dir = pathlib.Path(cluster.tmp) / "payloads"
            self.url = "file://%s" % self.dir

    def keys(self, prefix):
        if self.dir is not None:
            root = self.dir / prefix
            if not root.exists():
                return []
            return sorted(str(p.relative_to(self.dir)) for p in root.rglob("*") if p.is_file())
        query = urllib.parse.urlencode({"list-type": "2", "prefix": "run/" + prefix})
        _, body = moto_service.s3_request("GET", "%s/%s?%s" % (self.endpoint, self.bucket, query))
        return sorted(k[len("run/"):] for k in re.findall(r"<Key>([^<]+)</Key>", body.decode()))

    def objects(self):
        return self.keys("objects/")

    def write(self, key, data):
        if self.dir is not None:
            path = self.dir / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        else:
            moto_service.s3_request("PUT", "%s/%s/run/%s" % (self.endpoint, self.bucket, key), data)


def without_hold(reference):
    """A reference without its hold token (every published message has its own: docs/protocol.md
    §10), to compare which object two references name."""
    inner = dict(reference["asya-payload-ref"])
    inner.pop("hold", None)
    return {"asya-payload-ref": inner}


def use_store(cluster, request, **env):
    store = Store(cluster, request)
    cluster.env.update({"ASYA_PAYLOAD_STORE": store.url, "PYTHONPATH": str(HERE)})
    cluster.env.update(env)
    return store


def start(cluster, name, handler=None, **kwargs):
    env = dict(kwargs.pop("env", {}))
    if handler:
        env["ASYA_HANDLER"] = "payload_handlers." + handler
    return cluster.actor(name, env=env, **kwargs)


def result(cluster, envelope_id, timeout=120):
    path = cluster.results / ("%s.json" % envelope_id)
    wait_for(lambda: path.exists(), timeout, "result %s" % envelope_id, interval=0.1)
    return json.loads(path.read_bytes())


def size_for(cluster):
    # SQS with an S3 store in moto: 50 MB (moto holds every object in memory); the others 100 MB.
    return 50 * MB if cluster.transport == "sqs" else 100 * MB


def assert_no_reference_seen(cluster):
    assert cluster.markers_named("saw-reference-") == [], "a handler was given a payload reference"


def test_large_payload_crosses_a_three_actor_pipeline_by_reference_and_a_passthrough_writes_once(
        cluster, request):
    store = use_store(cluster, request)
    size = size_for(cluster)
    start(cluster, "make", "make_big")
    start(cluster, "pass-one", "passthrough")
    start(cluster, "pass-two", "passthrough")
    start(cluster, "happy-end", runtime=False)
    cluster.queues.send("asya-make", {"id": "BIG1", "route": {"actors": ["make", "pass-one", "pass-two"],
                                                              "current": 0, "metadata": {"m": 1}},
                                      "headers": {"trace": "t1"}, "payload": {"bytes": size, "tag": "big"}})
    got = result(cluster, "BIG1", timeout=300)
    data = got["payload"]["data"]
    assert len(data) == size
    assert data[:26] == "abcdefghijklmnopqrstuvwxyz"
    assert got["headers"]["trace"] == "t1" and got["route"]["metadata"] == {"m": 1}
    assert got["route"]["current"] == 3
    # Written once by `make`; both pass-through actors forwarded the same reference.
    assert len(store.objects()) == 1, store.objects()
    assert cluster.markers_named("called-pass-two-big") == ["called-pass-two-big"]
    assert_no_reference_seen(cluster)


def test_fanout_of_a_large_payload_stores_each_distinct_payload_once(cluster, request):
    if cluster.transport == "rabbitmq":
        pytest.skip("covered on sqlite and sqs; the sidecar code path does not depend on the transport")
    store = use_store(cluster, request)
    start(cluster, "fan", "fanout_big")
    start(cluster, "digest", "digest")
    start(cluster, "happy-end", runtime=False)
    cluster.queues.send("asya-fan", {"id": "FAN1", "route": {"actors": ["fan", "digest"], "current": 0},
                                     "payload": {"bytes": 2 * MB}})
    digests = [result(cluster, i)["payload"] for i in ("FAN1", "FAN1-1", "FAN1-2")]
    assert [d["length"] for d in digests] == [2 * MB] * 3
    assert digests[0]["sha256"] == hashlib.sha256(b"s" * 2 * MB).hexdigest() == digests[1]["sha256"]
    assert digests[2]["sha256"] == hashlib.sha256(b"o" * 2 * MB).hexdigest()
    assert len(store.objects()) == 2, store.objects()
    assert_no_reference_seen(cluster)


def test_a_join_of_large_branches_gets_their_payloads_and_stores_its_large_output_once(cluster, request):
    """fan → pass → combine (a join): the branches travel by reference, the join's handler gets
    the payloads themselves, and its 6 MB output goes on by reference too."""
    if cluster.transport == "rabbitmq":
        pytest.skip("covered on sqlite and sqs; the sidecar code path does not depend on the transport")
    store = use_store(cluster, request)
    start(cluster, "fan", "fanout_big")
    start(cluster, "pass", "passthrough")
    start(cluster, "combine", "join_lengths",
          env={"ASYA_JOIN": "true", "ASYA_JOIN_STORE": "sqlite://%s/joins.db" % cluster.tmp,
               "ASYA_JOIN_TIMEOUT": "60s"})
    start(cluster, "happy-end", runtime=False)
    cluster.queues.send("asya-fan", {"id": "FANJ", "route": {"actors": ["fan", "pass", "combine"], "current": 0},
                                     "payload": {"bytes": 2 * MB}})
    got = result(cluster, "FANJ")["payload"]
    same, other = hashlib.sha256(b"s" * 2 * MB).hexdigest(), hashlib.sha256(b"o" * 2 * MB).hexdigest()
    assert got["lengths"] == [2 * MB] * 3
    assert got["sha256"] == [same, same, other]
    assert got["data"] == "s" * 4 * MB + "o" * 2 * MB
    assert_no_reference_seen(cluster)
    # Two distinct branch payloads and the join's output, each stored once.
    assert len(store.objects()) == 3, store.objects()
    # Branches 1 and 2 ended at the join, which released their ids; FANJ (branch 0, and the join's
    # output) is released by the end actor. Every message was consumed: each hold token is released
    # too, so every hold has a release.
    wait_for(lambda: set(release_keys("FANJ", "FANJ-1", "FANJ-2")) <= set(store.keys("released/")), 30,
             "the releases of the branch ids and of FANJ")
    wait_for(lambda: {k.split("/")[1] for k in store.keys("holds/")}
             <= {k.split("/")[1] for k in store.keys("released/")}, 30, "every hold to be released")


def release_keys(*ids):
    return sorted("released/" + hashlib.sha256(i.encode()).hexdigest()[:40] for i in ids)


def test_a_join_branch_whose_object_is_missing_reaches_the_handler_as_payload_unavailable(
        cluster, request):
    if cluster.transport != "sqlite":
        pytest.skip("the check is the sidecar's; once on sqlite")
    store = use_store(cluster, request)
    lost = json.dumps({"data": "gone" * 100000}).encode()
    ref = reference_to(store, lost)
    sha = ref["asya-payload-ref"]["sha256"]
    kept = b'{"data":"' + b"k" * 300000 + b'"}'
    store.write("objects/" + hashlib.sha256(kept).hexdigest(), kept)
    start(cluster, "combine", "join_kinds",
          env={"ASYA_JOIN": "true", "ASYA_JOIN_STORE": "sqlite://%s/joins.db" % cluster.tmp,
               "ASYA_JOIN_TIMEOUT": "60s"})
    start(cluster, "happy-end", runtime=False)
    for index, payload in enumerate([{"data": "small"}, ref, reference_to(store, kept)]):
        cluster.queues.send("asya-combine", {
            "id": "JM-%d" % index, "route": {"actors": ["fan", "combine"], "current": 1},
            "headers": {"asya-fanout": [{"group": "JM@0", "index": index, "count": 3}]},
            "payload": payload})
    got = result(cluster, "JM")["payload"]
    assert got["kinds"] == ["ok", "payload_unavailable", "ok"]
    assert got["lengths"] == [5, None, 300000]
    slot = got["slots"][1]
    assert slot["actor"] == "combine"
    assert slot["original_payload"] == ref and slot["details"]["reference"] == ref
    assert sha in slot["details"]["message"] and "branch 1" in slot["details"]["message"]
    assert_no_reference_seen(cluster)


def reference_to(store, data, envelope_sha=None):
    sha = envelope_sha or hashlib.sha256(data).hexdigest()
    return {"asya-payload-ref": {"url": "%s/objects/%s" % (store.url, sha), "size": len(data), "sha256": sha}}


@pytest.mark.parametrize("damage", ["missing", "changed"])
def test_missing_or_changed_object_goes_to_error_end_as_payload_unavailable(cluster, request, damage):
    if cluster.transport != "sqlite":
        pytest.skip("the check is the sidecar's; once on sqlite")
    store = use_store(cluster, request)
    data = json.dumps({"data": "x" * 300000, "tag": "bad"}).encode()
    ref = reference_to(store, data)
    sha = ref["asya-payload-ref"]["sha256"]
    if damage == "changed":
        store.write("objects/" + sha, data.replace(b"x", b"y", 1))
    start(cluster, "pass-one", "passthrough")
    start(cluster, "error-end", runtime=False)
    cluster.queues.send("asya-pass-one", {"id": "BAD1", "route": {"actors": ["pass-one"], "current": 0},
                                          "payload": ref})
    got = result(cluster, "BAD1")
    assert got["payload"]["error"] == "payload_unavailable"
    assert sha in got["payload"]["details"]["message"]
    assert got["payload"]["original_payload"] == ref
    assert cluster.markers_named("called-pass-one") == [], "the handler was called"


def test_objects_live_while_queued_and_are_deleted_after_the_end_and_grace(cluster, request):
    if cluster.transport != "sqlite":
        pytest.skip("the lifetime rule is the store's; once on sqlite")
    store = use_store(cluster, request, ASYA_PAYLOAD_GRACE="1s", ASYA_PAYLOAD_ORPHAN_AGE="1h",
                  ASYA_PAYLOAD_SWEEP_INTERVAL="200ms")
    start(cluster, "make", "make_big")
    start(cluster, "happy-end", runtime=False)
    cluster.queues.send("asya-make", {"id": "LIFE1", "route": {"actors": ["make", "digest"], "current": 0},
                                      "payload": {"bytes": 1 * MB, "tag": "life"}})
    # The output waits in asya-digest (no consumer yet) while the end actor sweeps every 200 ms.
    wait_for(lambda: cluster.queues.stats("asya-digest")["ready"] == 1, 60, "the output in asya-digest")
    (obj,) = store.objects()
    # Longer than the grace period and several sweeps: a queued envelope's object must stay.
    time.sleep(2.0)
    assert store.objects() == [obj]
    start(cluster, "digest", "digest")
    assert result(cluster, "LIFE1", timeout=120)["payload"]["length"] == 1 * MB
    wait_for(lambda: store.objects() == [], 30, "the object to be deleted after release + grace")


def test_duplicate_after_the_end_is_processed_and_holds_the_object_again(cluster, request):
    """What a crash after publish and before ack leaves: the same envelope (same reference) is
    delivered once more, here after the first copy already ended. The duplicate is processed from
    the same object, which is deleted only once the duplicate ended too."""
    if cluster.transport != "sqlite":
        pytest.skip("the lifetime rule is the store's; once on sqlite")
    store = use_store(cluster, request, ASYA_PAYLOAD_GRACE="3s", ASYA_PAYLOAD_ORPHAN_AGE="1h",
                  ASYA_PAYLOAD_SWEEP_INTERVAL="200ms")
    start(cluster, "make", "make_big")
    start(cluster, "happy-end", runtime=False)
    cluster.queues.send("asya-make", {"id": "DUP1", "route": {"actors": ["make", "digest"], "current": 0},
                                      "payload": {"bytes": 1 * MB, "tag": "dup"}})
    wait_for(lambda: cluster.queues.stats("asya-digest")["ready"] == 1, 60, "the output in asya-digest")
    duplicate = cluster.queues.recv("asya-digest", 1)[0]["body"]
    assert "asya-payload-ref" in duplicate
    cluster.queues.send("asya-digest", duplicate)
    start(cluster, "digest", "digest")
    assert result(cluster, "DUP1")["payload"]["length"] == 1 * MB
    (cluster.results / "DUP1.json").unlink()
    cluster.queues.send("asya-digest", duplicate)  # within the grace period
    assert result(cluster, "DUP1")["payload"]["length"] == 1 * MB
    assert len(cluster.markers_named("called-digest-dup")) == 1
    assert pathlib.Path(cluster.markers / "called-digest-dup").read_text().count("call") == 2
    wait_for(lambda: store.objects() == [], 30, "the object to be deleted after both ended")


def crashed_at(actor, point, timeout=120):
    """Waits for the actor's sidecar to kill itself at failpoint `point` (ASYA_FAILPOINTS)."""
    wait_for(lambda: not actor.sidecar.alive(), timeout, "the sidecar to crash at %s" % point)
    assert actor.sidecar.popen.returncode == -signal.SIGKILL, actor.logs()
    assert "failpoint %s reached" % point in actor.sidecar.text(), actor.logs()


def restart_without_failpoints(actor):
    actor.env.pop("ASYA_FAILPOINTS")
    actor.start_sidecar()


def test_crash_during_upload_loses_nothing_and_its_leftover_is_swept(cluster, request):
    """The sidecar dies after writing the object's temporary and before renaming it (failpoint
    payload.file_before_rename): nothing was published, the temporary is swept after the orphan
    age, and the redelivered message is processed."""
    if cluster.transport != "sqlite":
        pytest.skip("a file store's crash leftovers; once on sqlite")
    store = use_store(cluster, request, ASYA_PAYLOAD_GRACE="1s", ASYA_PAYLOAD_ORPHAN_AGE="4s",
                      ASYA_PAYLOAD_SWEEP_INTERVAL="200ms", ASYA_VISIBILITY_TIMEOUT="2s")
    maker = start(cluster, "make", "make_big", env={"ASYA_FAILPOINTS": "payload.file_before_rename"})
    cluster.queues.send("asya-make", {"id": "CRASH1", "route": {"actors": ["make"], "current": 0},
                                      "payload": {"bytes": 100 * MB, "tag": "crash"}})
    crashed_at(maker, "payload.file_before_rename")
    assert cluster.queues.stats(HAPPY)["ready"] == 0, "published before the upload finished"
    assert store.objects() == [], "the object was renamed into place before the crash"
    leftover = store.keys("tmp/")
    assert len(leftover) == 1, leftover
    assert (store.dir / leftover[0]).stat().st_size > 100 * MB
    restart_without_failpoints(maker)  # the message comes back after its lease
    start(cluster, "happy-end", runtime=False)
    assert len(result(cluster, "CRASH1", timeout=300)["payload"]["data"]) == 100 * MB
    assert pathlib.Path(cluster.markers / "called-make-crash").read_text().count("call") == 2
    wait_for(lambda: not set(leftover) & set(store.keys("tmp/")), 60, "the leftover to be swept")
    wait_for(lambda: store.objects() == [], 60, "the object to be deleted after the end")


def test_crash_before_the_rename_of_an_inline_input_written_ahead_loses_nothing(cluster, request):
    """A large inline input passed on unchanged is written to the store ahead while its runtime
    works; the sidecar dies before renaming it into place (payload.file_before_rename): nothing
    was published, the redelivered message is stored and forwarded once, and the leftover is
    swept."""
    if cluster.transport != "sqlite":
        pytest.skip("a file store's crash leftovers; once on sqlite")
    store = use_store(cluster, request, ASYA_PAYLOAD_GRACE="1s", ASYA_PAYLOAD_ORPHAN_AGE="4s",
                      ASYA_PAYLOAD_SWEEP_INTERVAL="200ms", ASYA_VISIBILITY_TIMEOUT="2s")
    passer = start(cluster, "pass", "passthrough", env={"ASYA_FAILPOINTS": "payload.file_before_rename"})
    data = ("abcdefghijklmnopqrstuvwxyz" * (8 * MB // 26 + 1))[:8 * MB]
    cluster.queues.send("asya-pass", {"id": "AHEAD1", "route": {"actors": ["pass"], "current": 0},
                                      "payload": data})
    crashed_at(passer, "payload.file_before_rename")
    assert cluster.queues.stats(HAPPY)["ready"] == 0, "published before the object was in place"
    assert store.objects() == [], "the object was renamed into place before the crash"
    leftover = store.keys("tmp/")
    assert len(leftover) == 1 and (store.dir / leftover[0]).stat().st_size == len(data) + 2, leftover
    restart_without_failpoints(passer)  # the message comes back after its lease
    start(cluster, "happy-end", runtime=False)
    assert result(cluster, "AHEAD1")["payload"] == data
    assert pathlib.Path(cluster.markers / "called-pass-x").read_text().count("call") == 2
    wait_for(lambda: not set(leftover) & set(store.keys("tmp/")), 60, "the leftover to be swept")
    wait_for(lambda: store.objects() == [], 60, "the object to be deleted after the end")


def test_crash_after_the_upload_before_the_publish_loses_nothing_and_the_orphan_is_deleted(
        cluster, request):
    """The sidecar dies once the output's object is stored and held, before publishing the
    envelope that refers to it (failpoint payload.stored). The redelivered message is processed
    (its handler stamps each call, so it stores a second object); the first object, referred to
    by no envelope and held by a hold token no message carries, is deleted after the orphan age,
    and the second after the end."""
    if cluster.transport != "sqlite":
        pytest.skip("a file store's crash leftovers; once on sqlite")
    store = use_store(cluster, request, ASYA_PAYLOAD_GRACE="1s", ASYA_PAYLOAD_ORPHAN_AGE="10s",
                      ASYA_PAYLOAD_SWEEP_INTERVAL="200ms", ASYA_VISIBILITY_TIMEOUT="2s")
    maker = start(cluster, "make", "make_big_unique", env={"ASYA_FAILPOINTS": "payload.stored"})
    cluster.queues.send("asya-make", {"id": "CRASH2", "route": {"actors": ["make"], "current": 0},
                                      "payload": {"bytes": 1 * MB, "tag": "orphan"}})
    crashed_at(maker, "payload.stored")
    assert cluster.queues.stats(HAPPY)["ready"] == 0, "published although the sidecar died first"
    (orphan,) = store.objects()
    restart_without_failpoints(maker)
    start(cluster, "happy-end", runtime=False)
    got = result(cluster, "CRASH2")
    assert len(got["payload"]["data"]) == 1 * MB
    assert pathlib.Path(cluster.markers / "called-make-orphan").read_text().count("call") == 2
    wait_for(lambda: orphan not in store.objects(), 60, "the orphaned object to be deleted")
    wait_for(lambda: store.objects() == [], 30, "the object to be deleted after the end")


def test_crash_after_the_publish_before_the_ack_sends_a_duplicate_of_the_same_object(cluster, request):
    """The sidecar dies once its output is published and before it acks its input (failpoint
    sidecar.before_ack). The input is redelivered and processed again; its duplicate output
    refers to the same object (same bytes, same object; each message its own hold token), and both
    copies are processed."""
    if cluster.transport != "sqlite":
        pytest.skip("the lifetime rule is the store's; once on sqlite")
    store = use_store(cluster, request, ASYA_PAYLOAD_GRACE="1s", ASYA_PAYLOAD_ORPHAN_AGE="1h",
                      ASYA_PAYLOAD_SWEEP_INTERVAL="200ms", ASYA_VISIBILITY_TIMEOUT="2s")
    maker = start(cluster, "make", "make_big", env={"ASYA_FAILPOINTS": "sidecar.before_ack"})
    cluster.queues.send("asya-make", {"id": "ACK1", "route": {"actors": ["make", "digest"], "current": 0},
                                      "payload": {"bytes": 1 * MB, "tag": "ack"}})
    crashed_at(maker, "sidecar.before_ack")
    assert cluster.queues.stats("asya-digest")["ready"] == 1
    restart_without_failpoints(maker)
    wait_for(lambda: cluster.queues.stats("asya-digest")["ready"] == 2, 60, "the duplicate output")
    wait_for(lambda: cluster.queues.empty("asya-make"), 30, "the input to be acked")
    copies = [m["body"] for m in cluster.queues.recv("asya-digest", 2)]
    references = [json.loads(body)["payload"]["asya-payload-ref"] for body in copies]
    tokens = [r.pop("hold") for r in references]
    assert references[0] == references[1], references
    assert tokens[0] != tokens[1], tokens
    assert len(store.objects()) == 1
    for body in copies:
        cluster.queues.send("asya-digest", body)
    start(cluster, "digest", "digest")
    start(cluster, "happy-end", runtime=False)
    assert result(cluster, "ACK1")["payload"]["length"] == 1 * MB
    marker = pathlib.Path(cluster.markers / "called-digest-ack")
    wait_for(lambda: marker.exists() and marker.read_text().count("call") == 2, 60,
             "both copies to be processed")
    assert_no_reference_seen(cluster)
    wait_for(lambda: cluster.queues.empty("asya-digest"), 30, "both copies to be acked")
    wait_for(lambda: store.objects() == [], 30, "the object to be deleted after both ended")


def test_crash_after_a_passthrough_answer_was_compared_redelivers_and_forwards_the_same_object(
        cluster, request):
    """The pass-through actor's sidecar dies once it compared the runtime's answer with the
    object while it arrived (failpoint payload.answer_compared), before publishing: nothing was
    published, the redelivered input is processed again and forwards the same reference; the
    result holds the real payload and the store holds one object."""
    if cluster.transport != "sqlite":
        pytest.skip("the compare is the sidecar's; once on sqlite")
    store = use_store(cluster, request, ASYA_VISIBILITY_TIMEOUT="2s")
    start(cluster, "make", "make_big")
    passer = start(cluster, "pass", "passthrough", env={"ASYA_FAILPOINTS": "payload.answer_compared"})
    cluster.queues.send("asya-make", {"id": "CMP1", "route": {"actors": ["make", "pass"], "current": 0},
                                      "payload": {"bytes": 3 * MB, "tag": "cmp"}})
    crashed_at(passer, "payload.answer_compared")
    assert cluster.queues.stats(HAPPY)["ready"] == 0, "published although the sidecar died first"
    restart_without_failpoints(passer)
    start(cluster, "happy-end", runtime=False)
    got = result(cluster, "CMP1")
    assert len(got["payload"]["data"]) == 3 * MB and got["payload"]["tag"] == "cmp"
    assert len(store.objects()) == 1, store.objects()
    assert pathlib.Path(cluster.markers / "called-pass-cmp").read_text().count("call") == 2
    assert_no_reference_seen(cluster)


BATCH_ENV = {"ASYA_BATCH_MAX_SIZE": "16", "ASYA_BATCH_MAX_WAIT": "200ms", "ASYA_HANDLER_BATCH": "true"}


def recorded_batches(cluster, actor):
    return [json.loads((cluster.markers / name).read_text())
            for name in cluster.markers_named("batch-%s-" % actor)]


def test_a_batch_resolves_each_reference_alone_and_only_the_unresolvable_go_to_error_end(cluster, request):
    """Dynamic batching (ASYA_BATCH_MAX_SIZE > 1): references are resolved per item before the batch
    call; a missing or changed object sends only its own item to error-end as payload_unavailable,
    the rest of the batch is processed, and a pass-through forwards the same reference."""
    if cluster.transport != "sqlite":
        pytest.skip("the batch path is the sidecar's; once on sqlite")
    store = use_store(cluster, request)
    # Compact, as the runtime writes it back: a pass-through returns the same bytes.
    good = json.dumps({"data": "g" * 300000, "tag": "good"}, separators=(",", ":")).encode()
    store.write("objects/" + hashlib.sha256(good).hexdigest(), good)
    missing = reference_to(store, json.dumps({"data": "m" * 300000, "tag": "missing"}).encode())
    changed_data = json.dumps({"data": "c" * 300000, "tag": "changed"}).encode()
    changed = reference_to(store, changed_data)
    store.write("objects/" + changed["asya-payload-ref"]["sha256"], changed_data.replace(b"c", b"d", 1))
    payloads = {"P0": {"tag": "p0"}, "R1": reference_to(store, good), "M2": missing, "C3": changed,
                "P4": {"tag": "p4"}}
    for id_, payload in payloads.items():  # queued before the sidecar starts: one batch
        cluster.queues.send("asya-bpass", {"id": id_, "route": {"actors": ["bpass", "next"], "current": 0},
                                           "payload": payload})
    start(cluster, "bpass", "batch_passthrough", env=BATCH_ENV)
    forwarded = {m["json"]["id"]: m["json"] for m in cluster.queues.collect("asya-next", 3, timeout=120)}
    failed = {m["json"]["id"]: m["json"] for m in cluster.queues.collect("asya-error-end", 2, timeout=60)}
    assert sorted(forwarded) == ["P0", "P4", "R1"] and sorted(failed) == ["C3", "M2"]
    # The handler got the real payload inside a batch, and its pass-through output refers to the
    # input's object again (a hold token of its own): nothing new was written.
    batches = recorded_batches(cluster, "bpass")
    assert sorted(t for b in batches for t in b) == ["good", "p0", "p4"], batches
    assert any("good" in b and len(b) > 1 for b in batches), batches
    assert_no_reference_seen(cluster)
    assert without_hold(forwarded["R1"]["payload"]) == payloads["R1"]
    assert len(forwarded["R1"]["payload"]["asya-payload-ref"]["hold"]) == 32
    assert forwarded["P0"]["payload"] == {"tag": "p0"}
    assert len(store.objects()) == 2, store.objects()
    for id_ in ("M2", "C3"):
        error = failed[id_]["payload"]
        assert error["error"] == "payload_unavailable", error
        assert payloads[id_]["asya-payload-ref"]["sha256"] in error["details"]["message"]
        assert error["original_payload"] == payloads[id_]


def test_large_outputs_of_a_batch_are_stored_by_reference_per_item(cluster, request):
    """Dynamic batching: each batched output above ASYA_PAYLOAD_THRESHOLD is stored and held under
    its own output id before it is published as a reference; a small one stays inline; the next
    actor resolves them."""
    if cluster.transport != "sqlite":
        pytest.skip("the batch path is the sidecar's; once on sqlite")
    store = use_store(cluster, request)
    sizes = {"BA": 400000, "BB": 500000, "BS": 100}
    for id_, size in sizes.items():
        cluster.queues.send("asya-bmake", {"id": id_, "route": {"actors": ["bmake", "digest"], "current": 0},
                                           "payload": {"bytes": size, "tag": id_.lower()}})
    start(cluster, "bmake", "batch_make_big", env=BATCH_ENV)
    outputs = {m["json"]["id"]: m for m in cluster.queues.collect("asya-digest", 3, timeout=120)}
    batches = recorded_batches(cluster, "bmake")
    assert max(len(b) for b in batches) > 1, batches
    for id_ in ("BA", "BB"):
        ref = outputs[id_]["json"]["payload"]["asya-payload-ref"]
        assert ref["size"] > sizes[id_] and ref["url"] == "%s/objects/%s" % (store.url, ref["sha256"])
    assert outputs["BS"]["json"]["payload"]["tag"] == "bs"
    assert len(store.objects()) == 2, store.objects()
    # One per stored output's id, and one per output's hold token.
    assert len(store.keys("holds/")) == 4, store.keys("holds/")
    for m in outputs.values():
        cluster.queues.send("asya-digest", m["body"])
    start(cluster, "digest", "digest")
    start(cluster, "happy-end", runtime=False)
    for id_, size in sizes.items():
        assert result(cluster, id_)["payload"]["length"] == size
    assert_no_reference_seen(cluster)
