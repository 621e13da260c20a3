"""Issue 19, end to end: a handler file named like a standard-library module (tokenize.py, which
`inspect` imports before the handler is loaded) is the module `asya up` serves; the message reaches
happy-end with the handler's output, and the runtime's ready line names the handler's file."""
import json
import textwrap

from local_harness import manifest, wait_for

# The reported case: ASYA_HANDLER=tokenize.tokenize called the standard library's
# tokenize.tokenize(readline) with the payload dict ("TypeError: 'dict' object is not callable").
TOKENIZE_HANDLER = textwrap.dedent(
    """
    def tokenize(payload):
        return {"tokens": payload["text"].split(), "count": len(payload["text"].split())}
    """
)


def ready_lines(asya):
    lines = []
    for path in sorted(asya.state.rglob("*.runtime.log")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("msg") == "runtime ready":
                lines.append(record)
    return lines


def test_tokenize_py_handler_reaches_happy_end_with_its_output(asya, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "tokenize.py").write_text(TOKENIZE_HANDLER)
    (project / "tok.yaml").write_text(manifest("tok", "tokenize.tokenize", workdir=project))
    # A plain interpreter: a pyenv shim for python3 would add its own variables to the runtime.
    asya.env["ASYA_PYTHON"] = "/usr/bin/python3"
    asya.up_detached(project, "--no-gateway")

    out = asya.send("tok", "--payload", json.dumps({"text": "to be or not"}), "--id", "tok-1",
                    "--wait", "--timeout", 60)
    (result,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert result["id"] == "tok-1"
    assert result["payload"] == {"tokens": ["to", "be", "or", "not"], "count": 4}
    assert result["route"] == {"actors": ["tok"], "current": 1}
    # Stored by happy-end (results/succeeded), not error-end.
    stored = wait_for(lambda: asya.results("succeeded").get("tok-1"), 30, "tok-1 in results/succeeded")
    assert stored["payload"] == result["payload"]
    assert "tok-1" not in asya.results("failed")

    (ready,) = wait_for(lambda: ready_lines(asya), 30, "the runtime's ready line")
    assert ready["handler"] == "tokenize.tokenize"
    assert ready["handler_file"] == str(project / "tokenize.py")
