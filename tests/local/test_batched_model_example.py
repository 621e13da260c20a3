"""examples/batched-model: the batch handler gives one result per payload, in order, the same as
the model one payload at a time; the weights come from the fixed seed (the same answers in a fresh
process); torch runs on one thread. Needs python3-torch (`scripts/setup --bench`)."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("torch", reason="python3-torch is not installed for %s (scripts/setup --bench "
                    "installs it)" % sys.executable)

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "batched-model"
sys.path.insert(0, str(EXAMPLE))
import classifier  # noqa: E402

PAYLOADS = [{"text": "the build was fast"}, {"text": "the build was slow", "id": 7},
            {"t": 12345, "message": "x" * 64}, "a bare string", [1, 2, 3], {"text": ""}]


def test_a_batch_gives_one_result_per_payload_in_order_with_its_fields_kept():
    results = classifier.classify_batch(PAYLOADS)
    assert len(results) == len(PAYLOADS)
    for payload, result in zip(PAYLOADS, results):
        if isinstance(payload, dict):
            assert {k: result[k] for k in payload} == payload  # e.g. a sender's stamp passes through
        else:
            assert result["input"] == payload
        assert isinstance(result["label"], int) and 0 <= result["label"] < classifier.CLASSES
        assert 0.0 < result["score"] <= 1.0
    assert classifier.classify_batch([]) == []


def test_batching_does_not_change_an_answer():
    batched = classifier.classify_batch(PAYLOADS)
    alone = [classifier.classify(p) for p in PAYLOADS]
    assert [r["label"] for r in batched] == [r["label"] for r in alone]
    assert [r["score"] for r in batched] == pytest.approx([r["score"] for r in alone], abs=1e-4)
    # Different inputs get different scores: the model is not a constant.
    assert len({r["score"] for r in batched}) > 1


def test_the_weights_come_from_the_fixed_seed_and_torch_uses_one_thread():
    here = classifier.classify_batch(PAYLOADS)
    code = ("import json, sys, classifier; print(json.dumps({'threads': "
            "classifier.torch.get_num_threads(), 'out': classifier.classify_batch(json.load(sys.stdin))}))")
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(PAYLOADS), cwd=EXAMPLE,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    fresh = json.loads(done.stdout)
    assert fresh["threads"] == 1
    assert [r["label"] for r in fresh["out"]] == [r["label"] for r in here]
    assert [r["score"] for r in fresh["out"]] == pytest.approx([r["score"] for r in here], abs=1e-6)


def test_a_model_call_on_another_thread_starts_no_openmp_threads():
    # asya's Python runtime calls the handler on its connection thread, not on the thread that
    # imported the module: the one-thread setting must hold there too (else oneDNN's reorders
    # run with an OpenMP team of one thread per core, whose extra thread spins on another core).
    code = ("import os, threading, classifier\n"
            "def call():\n"
            "    before = set(os.listdir('/proc/self/task'))\n"
            "    for _ in range(3): classifier.classify_batch([{'text': 'abc'}] * 32)\n"
            "    new = set(os.listdir('/proc/self/task')) - before - {str(threading.get_native_id())}\n"
            "    print(len(new))\n"
            "thread = threading.Thread(target=call); thread.start(); thread.join()\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=EXAMPLE, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, ASYA_MODEL_WARMUP_MAX_BATCH="0"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0", "threads started by a model call on a second thread: %s" % done.stdout


def test_the_manifest_serves_classify_batch_with_batching():
    text = (EXAMPLE / "classify.yaml").read_text()
    assert "value: classifier.classify_batch" in text
    assert "batching:" in text and "maxSize: 32" in text and "maxWait: 10ms" in text


def test_the_example_answers_through_asya_up_with_batching_wired(asya, repo):
    """`asya up examples/batched-model`: spec.batching reaches the sidecar (ASYA_BATCH_*) and the
    runtime (ASYA_HANDLER_BATCH=true), and every message sent gets its own classified result."""
    from local_harness import process_environment, wait_for
    asya.env["ASYA_PYTHON"] = sys.executable  # the interpreter with torch
    asya.up_detached(repo / "examples" / "batched-model", "--no-gateway")
    out = asya.send("classify", "--payload", '{"text": "a batch of one"}', "--wait", "--timeout", 180,
                    timeout=240)
    [first] = [json.loads(line) for line in out.stdout.splitlines()]
    expected = classifier.classify({"text": "a batch of one"})
    assert first["payload"]["text"] == "a batch of one"
    assert first["payload"]["label"] == expected["label"]
    assert first["payload"]["score"] == pytest.approx(expected["score"], abs=1e-4)
    replica = asya.actor("classify")["processes"][0]
    runtime_env = process_environment(replica["runtime"])
    sidecar_env = process_environment(replica["sidecar"])
    assert runtime_env["ASYA_HANDLER_BATCH"] == "true"
    assert runtime_env["ASYA_HANDLER"] == "classifier.classify_batch"
    assert (sidecar_env["ASYA_BATCH_MAX_SIZE"], sidecar_env["ASYA_BATCH_MAX_WAIT"]) == ("32", "10ms")
    # Several messages at once: each gets its own result (one per payload, none mixed up).
    texts = ["message %d" % i for i in range(12)]
    for text in texts:
        asya.send("classify", "--payload", json.dumps({"text": text}))
    wait_for(lambda: len(asya.results()) == 1 + len(texts), 180, "13 results")
    by_text = {r["payload"]["text"]: r["payload"] for r in asya.results().values()}
    for text in texts:
        expected = classifier.classify({"text": text})
        assert by_text[text]["label"] == expected["label"]
        assert by_text[text]["score"] == pytest.approx(expected["score"], abs=1e-4)
