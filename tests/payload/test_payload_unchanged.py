"""Answers without the payload (docs/protocol.md §3 "payload_unchanged", §10 "Pass-through") with
real sidecars on SQLite and a file payload store: a runtime whose handler returns its payload as
it got it answers "payload_unchanged": true, and the sidecar forwards the payload as it received
it: a large inline payload is stored once, a reference is forwarded as it came (nothing written),
in a fan-out and in a batch each output gets its own envelope's payload. A rogue runtime that
answers so although its sidecar did not declare the feature is still routed correctly (the
sidecar knows the answer), and a runtime is trusted not to answer so for a payload it changed,
as it is trusted for the bytes it sends. A large inline input is written to the store ahead while
the runtime works: an unchanged or equal answer commits that object, any other answer abandons it
(nothing left behind), and a sidecar whose input was not passed on stops writing ahead until one
is again."""
import hashlib
import json
import pathlib
import sys

from sidecar_harness import running_cluster, wait_for

HERE = pathlib.Path(__file__).resolve().parent
ROGUE = [sys.executable, str(HERE / "unchanged_runtime.py")]
MB = 1024 * 1024


def store_env(cluster):
    store = pathlib.Path(cluster.tmp) / "payloads"
    cluster.env.update({"ASYA_PAYLOAD_STORE": "file://%s" % store, "PYTHONPATH": str(HERE)})
    return store


def objects(store):
    root = store / "objects"
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def result(cluster, envelope_id, timeout=120):
    path = cluster.results / ("%s.json" % envelope_id)
    wait_for(lambda: path.exists(), timeout, "result %s" % envelope_id, interval=0.05)
    return json.loads(path.read_bytes())


def features_of(actor):
    return (actor.dir / "sidecar-features").read_text().split("\n")


def letters(n):
    return ("abcdefghijklmnopqrstuvwxyz" * (n // 26 + 1))[:n]


def test_python_passthrough_of_a_large_payload_through_two_actors_writes_it_once(request, build_path):
    with running_cluster(request, build_path, "sqlite") as cluster:
        store = store_env(cluster)
        debug = {"ASYA_HANDLER": "payload_handlers.passthrough", "ASYA_LOG_LEVEL": "debug"}
        first = cluster.actor("pass-one", env=debug)
        second = cluster.actor("pass-two", env=debug)
        cluster.actor("happy-end", runtime=False)
        # Each sidecar declared the feature, under its own pid, before its runtime answered.
        for actor in (first, second):
            assert features_of(actor)[:2] == [str(actor.sidecar.popen.pid), "payload-unchanged"]
        data = letters(2 * MB)  # inline on the queue, above ASYA_PAYLOAD_THRESHOLD (256 KiB)
        cluster.queues.send("asya-pass-one", {"id": "U1", "route": {"actors": ["pass-one", "pass-two"]},
                                              "headers": {"h": "v"}, "payload": data})
        got = result(cluster, "U1")
        assert got["payload"] == data
        assert got["headers"]["h"] == "v" and got["route"]["current"] == 2
        # pass-one stored the inline payload once; pass-two forwarded its reference.
        assert len(objects(store)) == 1, objects(store)
        assert cluster.markers_named("called-pass-two") == ["called-pass-two-x"]
        # Both runtimes answered without the payload (their debug line; the sidecars' forwarding
        # without writing is what the object count shows).
        for actor in (first, second):
            lines = [json.loads(line) for line in actor.runtime.text().splitlines() if line.startswith("{")]
            assert [line["outputs"] for line in lines if line["msg"] == "answered payload_unchanged"] == [1], lines


def test_unchanged_answers_forward_a_reference_in_a_fanout_without_writing(request, build_path):
    with running_cluster(request, build_path, "sqlite") as cluster:
        store = store_env(cluster)
        cluster.actor("make", env={"ASYA_HANDLER": "payload_handlers.make_big_string"})
        rogue = cluster.actor("rogue", runtime_cmd=ROGUE, env={"TEST_UNCHANGED_COUNT": "2"})
        cluster.actor("happy-end", runtime=False)
        cluster.queues.send("asya-make", {"id": "F1", "route": {"actors": ["make", "rogue"]},
                                          "payload": {"bytes": MB}})
        results = [result(cluster, "F1"), result(cluster, "F1-1-1")]
        for got in results:
            assert got["payload"] == letters(MB)  # the end actor resolved the reference
        assert results[1]["parent_id"] == "F1"
        assert [frame["count"] for frame in results[1]["headers"]["asya-fanout"]] == [2]
        assert len(objects(store)) == 1, objects(store)  # written by `make` only
        assert (pathlib.Path(cluster.markers) / "features-rogue").read_text() == "declared\n"
        assert "payload-unchanged" in features_of(rogue)


def test_unchanged_answers_in_a_batch_get_each_envelopes_own_payload(request, build_path):
    with running_cluster(request, build_path, "sqlite") as cluster:
        cluster.env["PYTHONPATH"] = str(HERE)
        rogue = cluster.actor("rogue", runtime_cmd=ROGUE, start_sidecar=False,
                              env={"TEST_BATCH": "1", "ASYA_BATCH_MAX_SIZE": "8",
                                   "ASYA_BATCH_MAX_WAIT": "500ms"})
        cluster.actor("happy-end", runtime=False)
        payloads = [{"i": i, "n": 1.50, "s": "\\u00e9 %d" % i} for i in range(4)]
        cluster.queues.send_many("asya-rogue", [{"id": "B%d" % i, "route": {"actors": ["rogue"]},
                                                 "payload": p} for i, p in enumerate(payloads)])
        rogue.start_sidecar()
        for i, payload in enumerate(payloads):
            assert result(cluster, "B%d" % i)["payload"] == payload
        reads = (pathlib.Path(cluster.markers) / "features-rogue").read_text().splitlines()
        assert 1 <= len(reads) < 4, reads  # at least one request held several envelopes


def test_rogue_unchanged_answer_to_a_sidecar_that_did_not_declare_it_is_still_routed(request, build_path):
    with running_cluster(request, build_path, "sqlite") as cluster:
        rogue = cluster.actor("rogue", runtime_cmd=ROGUE, start_sidecar=False)
        # The features file cannot be written (a directory stands in its place): the sidecar logs
        # that the feature is off and runs on.
        (rogue.dir / "sidecar-features").mkdir()
        rogue.start_sidecar()
        cluster.actor("happy-end", runtime=False)
        cluster.queues.send("asya-rogue", {"id": "R1", "route": {"actors": ["rogue"]},
                                           "payload": {"kept": [1, 2.50]}})
        assert result(cluster, "R1")["payload"] == {"kept": [1, 2.50]}
        assert (pathlib.Path(cluster.markers) / "features-rogue").read_text() == "not declared\n"
        log = rogue.sidecar.text()
        assert "cannot declare this sidecar's features to the runtime" in log, log
        assert log.count("cannot declare this sidecar's features") == 1


def test_unchanged_large_inline_payload_without_a_store_is_written_from_the_input(request, build_path):
    # No payload store, SQLite body files: the output's body file is written from its parts, the
    # payload's part pointing into the input's own (mapped) body; the answer was a few bytes.
    with running_cluster(request, build_path, "sqlite") as cluster:
        cluster.env["PYTHONPATH"] = str(HERE)
        debug = {"ASYA_HANDLER": "payload_handlers.passthrough", "ASYA_LOG_LEVEL": "debug"}
        first = cluster.actor("pass-one", env=debug)
        cluster.actor("pass-two", env=debug)
        cluster.actor("happy-end", runtime=False)
        data = letters(3 * MB)
        cluster.queues.send("asya-pass-one", {"id": "I1", "route": {"actors": ["pass-one", "pass-two"]},
                                              "payload": data})
        got = result(cluster, "I1")
        assert got["payload"] == data and got["route"]["current"] == 2
        lines = [json.loads(line) for line in first.runtime.text().splitlines() if line.startswith("{")]
        assert [line["outputs"] for line in lines if line["msg"] == "answered payload_unchanged"] == [1]


def stored_from_ahead(actor):
    return actor.sidecar.text().count("written ahead, stored as")


def assert_object_is(store, data):
    """The store holds one object: the payload's JSON text, named by its SHA-256, no temporary."""
    text = json.dumps(data).encode()
    assert objects(store) == [hashlib.sha256(text).hexdigest()], objects(store)
    assert (store / "objects" / objects(store)[0]).read_bytes() == text
    assert not list((store / "tmp").iterdir()) if (store / "tmp").exists() else True


def test_large_inline_payload_sent_back_whole_is_stored_from_its_object_written_ahead(request, build_path):
    # The runtime sends the payload back (ASYA_PAYLOAD_UNCHANGED=false): the same bytes as the
    # input, found by comparing them, so the object written ahead while it worked is the output's.
    with running_cluster(request, build_path, "sqlite") as cluster:
        store = store_env(cluster)
        echo = cluster.actor("echo", env={"ASYA_HANDLER": "payload_handlers.passthrough",
                                          "ASYA_PAYLOAD_UNCHANGED": "false", "ASYA_LOG_LEVEL": "debug"})
        cluster.actor("happy-end", runtime=False)
        data = letters(3 * MB)
        cluster.queues.send("asya-echo", {"id": "W1", "route": {"actors": ["echo"]}, "payload": data})
        assert result(cluster, "W1")["payload"] == data
        assert_object_is(store, data)
        assert stored_from_ahead(echo) == 1, echo.sidecar.text()


def test_an_input_not_passed_on_abandons_its_object_and_stops_writing_ahead_until_one_is(
        request, build_path):
    with running_cluster(request, build_path, "sqlite") as cluster:
        store = store_env(cluster)
        gate = cluster.actor("gate", env={"ASYA_HANDLER": "payload_handlers.pass_unless_asked",
                                          "ASYA_LOG_LEVEL": "debug"})
        cluster.actor("happy-end", runtime=False)

        def through(envelope_id, payload):
            cluster.queues.send("asya-gate", {"id": envelope_id, "route": {"actors": ["gate"]},
                                              "payload": payload})
            return result(cluster, envelope_id)["payload"]

        first = letters(2 * MB)
        assert through("G1", first) == first  # written ahead, committed
        assert_object_is(store, first)
        # Changed by its handler: the object written ahead is abandoned, nothing is stored.
        assert through("G2", {"change": True, "data": letters(2 * MB)}) == {"changed": 2 * MB}
        assert len(objects(store)) == 1 and not list((store / "tmp").iterdir())
        assert "written ahead is abandoned" in gate.sidecar.text()
        # Not written ahead (the last one was wasted), stored as before; it came back unchanged,
        # so the next one is written ahead again.
        second, third = first[1:] + "A", first[2:] + "BB"
        assert through("G3", second) == second
        assert through("G4", third) == third
        assert stored_from_ahead(gate) == 2, gate.sidecar.text()
        assert len(objects(store)) == 3 and not list((store / "tmp").iterdir())
