"""Payloads passed to the runtime as a file descriptor (docs/protocol.md §3 "Payloads passed as a
file") with real sidecars on SQLite, a file payload store and the C++ runtime: a reference's
object goes to a runtime that declared `payload-fd` as a descriptor of the object's file, which the
runtime maps and hands to its handler; a pass-through answers "payload_unchanged" and the object is
written once. A runtime that does not declare it (ASYA_PAYLOAD_FD=false, the Python runtime) gets
the bytes; a changed object goes to error-end as payload_unavailable without reaching the runtime;
a rogue runtime that declares it, takes the descriptor and answers garbage is a
runtime_protocol_error."""
import json
import pathlib
import sys

from sidecar_harness import running_cluster, wait_for
from test_payload import result, use_store
from test_verified_mark import tamper_in_place

HERE = pathlib.Path(__file__).resolve().parent
MB = 1024 * 1024
PASSED = "passed as a file descriptor"


def cpp_runtime(cluster):
    build = pathlib.Path(cluster.sidecar_bin).parents[2]
    return [str(build / "tests/runtime_conformance/asya-conformance-runtime")]


def cpp_pass(cluster, name, **env):
    """An actor whose C++ runtime serves a raw pass-through (the payload's own bytes back)."""
    full = {"ASYA_HANDLER": "conformance_handlers.echo", "ASYA_CONFORMANCE_RAW": "1",
            "ASYA_LOG_LEVEL": "debug"}
    full.update(env)
    return cluster.actor(name, env=full, runtime_cmd=cpp_runtime(cluster))


def ready_lines(actor):
    path = actor.dir / "runtime-ready"
    wait_for(path.exists, 30, "the ready file of %s" % actor.name)
    return path.read_text().split("\n")


def letters(n):
    return ("abcdefghijklmnopqrstuvwxyz" * (n // 26 + 1))[:n]


def test_three_cpp_passthroughs_get_the_object_as_a_file_and_it_is_written_once(request, build_path):
    with running_cluster(request, build_path, "sqlite") as cluster:
        store = use_store(cluster, request)
        actors = [cpp_pass(cluster, name) for name in ("p1", "p2", "p3")]
        cluster.actor("happy-end", runtime=False)
        for actor in actors:
            assert ready_lines(actor)[1:3] == ["payload-fd", ""]
        data = letters(3 * MB)  # inline on the queue, above ASYA_PAYLOAD_THRESHOLD (256 KiB)
        cluster.queues.send("asya-p1", {"id": "D1", "route": {"actors": ["p1", "p2", "p3"]},
                                        "headers": {"h": "v"}, "payload": {"data": data}})
        got = result(cluster, "D1")
        assert got["payload"] == {"data": data}
        assert got["headers"]["h"] == "v" and got["route"]["current"] == 3
        assert len(store.objects()) == 1, store.objects()
        # p1 got the inline payload as a range of its SQLite body file; p2 and p3 the stored
        # object; each as a descriptor.
        for actor in actors:
            assert actor.runtime.text().count(PASSED) == 1, actor.runtime.text()


def test_inline_payloads_without_a_store_go_as_ranges_of_their_body_files(request, build_path):
    with running_cluster(request, build_path, "sqlite") as cluster:
        actors = [cpp_pass(cluster, name) for name in ("p1", "p2")]
        dom = cluster.actor("p3", env={"ASYA_HANDLER": "conformance_handlers.echo",
                                       "ASYA_LOG_LEVEL": "debug"}, runtime_cmd=cpp_runtime(cluster))
        cluster.actor("happy-end", runtime=False)
        data = letters(2 * MB)
        cluster.queues.send("asya-p1", {"id": "B1", "route": {"actors": ["p1", "p2", "p3"]},
                                        "headers": {"h": "v"}, "payload": [data, 1.5, {"k": None}]})
        got = result(cluster, "B1")
        assert got["payload"] == [data, 1.5, {"k": None}]
        assert got["headers"]["h"] == "v" and got["route"]["current"] == 3
        # The raw pass-throughs and the DOM echo (the payload parsed from the mapping) each got
        # the payload as a descriptor of the body file.
        for actor in actors + [dom]:
            assert actor.runtime.text().count(PASSED) == 1, actor.runtime.text()


def test_runtimes_that_do_not_declare_it_get_bytes(request, build_path):
    with running_cluster(request, build_path, "sqlite") as cluster:
        store = use_store(cluster, request)
        first = cpp_pass(cluster, "p1")
        off = cpp_pass(cluster, "p2", ASYA_PAYLOAD_FD="false")
        python = cluster.actor("p3", env={"ASYA_HANDLER": "payload_handlers.passthrough"})
        cluster.actor("happy-end", runtime=False)
        assert "payload-fd" not in ready_lines(off)
        assert "payload-fd" not in ready_lines(python)
        data = letters(MB)
        cluster.queues.send("asya-p1", {"id": "N1", "route": {"actors": ["p1", "p2", "p3"]},
                                        "payload": data})
        assert result(cluster, "N1")["payload"] == data
        assert len(store.objects()) == 1
        assert first.runtime.text().count(PASSED) == 1  # its inline payload's body file
        assert PASSED not in off.runtime.text()
        assert cluster.markers_named("called-p3") == ["called-p3-x"]


def test_a_changed_object_goes_to_error_end_and_never_reaches_the_runtime(request, build_path):
    with running_cluster(request, build_path, "sqlite") as cluster:
        store = use_store(cluster, request)
        cluster.actor("make", env={"ASYA_HANDLER": "payload_handlers.make_big"})
        cluster.queues.send("asya-make", {"id": "T1", "route": {"actors": ["make", "p2"]},
                                          "payload": {"bytes": MB, "tag": "t"}})
        wait_for(lambda: cluster.queues.stats("asya-p2")["ready"] == 1, 60, "the output in asya-p2")
        (key,) = store.objects()
        tamper_in_place(store.dir / key)
        receiver = cpp_pass(cluster, "p2")
        cluster.actor("error-end", runtime=False)
        got = result(cluster, "T1")
        assert got["payload"]["error"] == "payload_unavailable", got["payload"]
        assert "does not match its reference" in got["payload"]["details"]["message"]
        assert PASSED not in receiver.runtime.text()


def test_a_rogue_runtime_that_takes_the_descriptor_and_answers_garbage_is_a_protocol_error(request, build_path):
    with running_cluster(request, build_path, "sqlite") as cluster:
        use_store(cluster, request)
        cpp_pass(cluster, "p1")
        cluster.actor("rogue", runtime_cmd=[sys.executable, str(HERE / "fd_runtime.py")])
        cluster.actor("error-end", runtime=False)
        data = letters(MB)
        cluster.queues.send("asya-p1", {"id": "G1", "route": {"actors": ["p1", "rogue"]},
                                        "payload": data})
        got = result(cluster, "G1")
        assert got["payload"]["error"] == "runtime_protocol_error", got["payload"]
        seen = json.loads((pathlib.Path(cluster.markers) / "fd-rogue.json").read_text())
        # One descriptor, the marker in place of the payload, and through it exactly the payload.
        assert seen["fds"] == 1 and not seen["has_payload"], seen
        assert seen["marker"] == {"offset": 0, "length": len(data) + 2}, seen
        assert seen["payload"] == json.dumps(data)
