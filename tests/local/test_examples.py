"""The examples give their expected results through `asya up` and `asya send --wait`."""
import json


def test_hello_example_greets(asya, repo):
    asya.up_detached(repo / "examples" / "hello")
    out = asya.send("hello", "--payload", '{"name": "Ada"}', "--wait", "--timeout", 30)
    envelopes = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(envelopes) == 1
    assert envelopes[0]["payload"] == {"greeting": "hello Ada"}
    assert envelopes[0]["route"] == {"actors": ["hello"], "current": 1}
    stored = asya.run("results", envelopes[0]["id"], check=0)
    assert json.loads(stored.stdout) == envelopes[0]


def test_text_pipeline_example_summarises_each_document(asya, repo):
    asya.up_detached(repo / "examples" / "text-pipeline")
    doc = {"doc": "r1", "text": "I love this library. The build was slow! It works."}
    out = asya.send("--route", "split,score,collect", "--payload", json.dumps(doc), "--id", "doc-1",
                    "--wait", "--timeout", 40)
    envelopes = [json.loads(line) for line in out.stdout.splitlines()]
    # One final envelope per sentence: two ended at collect, the last carries the summary.
    assert sorted(e["id"] for e in envelopes) == ["doc-1", "doc-1-1", "doc-1-2"]
    summaries = [e["payload"] for e in envelopes if "summary" in e["payload"]]
    assert len(summaries) == 1
    assert summaries[0]["doc"] == "r1"
    assert summaries[0]["summary"] == {"sentences": 3, "average": 0.0, "label": "neutral"}
    assert [s["text"] for s in summaries[0]["sentences"]] == [
        "I love this library.", "The build was slow!", "It works."]
    assert [s["score"] for s in summaries[0]["sentences"]] == [1.0, -1.0, 0.0]


def test_demo_script_runs_and_stops_cleanly(repo, tmp_path):
    import os
    import subprocess
    from local_harness import build_dir
    env = dict(os.environ, ASYA_BUILD_DIR=str(build_dir()), TMPDIR=str(tmp_path))
    env.pop("ASYA_STATE_DIR", None)
    result = subprocess.run([str(repo / "scripts" / "demo")], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "review-1: positive" in result.stdout
    assert "review-2: negative" in result.stdout
    assert "asya: stopped" in result.stderr
    assert list(tmp_path.iterdir()) == []  # the temp state dir was removed
