"""`asya_runtime.py --check` (issue 19): what `asya up` runs for every actor before it starts
anything. It reads the configuration, imports the handler's module and resolves the handler as
the runtime would (a class handler is not created), opens no socket, prints one
{"asya_check": {...}} line naming the module and the file found, and exits 0 or 2."""
import json
import os
import pathlib
import subprocess
import sys

RUNTIME_FILE = pathlib.Path(__file__).resolve().parent.parent / "asya_runtime.py"

HANDLERS = {
    "good.py": "def process(p):\n    return p\n",
    "model.py": ("class Model:\n    created = []\n"
                 "    def __init__(self):\n        raise RuntimeError('no GPU here')\n"
                 "    def run(self, p):\n        return p\n"
                 "    limit = 3\n"
                 "class NeedsArgs:\n    def __init__(self, path):\n        pass\n"
                 "    def run(self, p):\n        return p\n"),
    "broken.py": "def process(p)\n    return p\n",
    "failing.py": "import os\nraise KeyError(os.environ['MODEL_PATH'])\n",
    "tokenize.py": "def process(p):\n    return p\n",
    "noisy.py": "print('loading the vocabulary')\ndef process(p):\n    return p\n",
}


def run_check(tmp_path, handler, **env):
    for name, text in HANDLERS.items():
        (tmp_path / name).write_text(text)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ASYA_") and k != "PYTHONPATH"}
    full_env.update({"ASYA_HANDLER": handler, "PYTHONDONTWRITEBYTECODE": "1"}, **env)
    done = subprocess.run([sys.executable, str(RUNTIME_FILE), "--check"], cwd=tmp_path, env=full_env,
                          capture_output=True, text=True, timeout=60)
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"asya_check":')]
    assert len(lines) == 1, (done.stdout, done.stderr)
    return done.returncode, json.loads(lines[0])["asya_check"]


def test_a_loadable_function_passes_and_names_its_file(tmp_path):
    code, result = run_check(tmp_path, "good.process")
    assert code == 0
    assert result == {"ok": True, "handler": "good.process", "module": "good", "file": str(tmp_path / "good.py")}


def test_a_class_handler_is_resolved_without_creating_it(tmp_path):
    code, result = run_check(tmp_path, "model.Model.run")
    assert code == 0, result  # Model() would raise
    assert result["file"] == str(tmp_path / "model.py")


def test_a_class_whose_init_needs_arguments_is_refused(tmp_path):
    code, result = run_check(tmp_path, "model.NeedsArgs.run")
    assert code == 2
    assert "parameter 'path' has no default value" in result["error"]


def test_a_typo_in_the_module_says_no_file_was_found(tmp_path):
    code, result = run_check(tmp_path, "godo.process")
    assert code == 2
    assert result["ok"] is False and result["module"] == "godo" and result["file"] is None
    assert "no module named 'godo'" in result["error"]
    assert str(tmp_path) in result["error"]  # the search path is listed


def test_a_missing_function_names_the_file_that_was_found(tmp_path):
    code, result = run_check(tmp_path, "good.proces")
    assert code == 2
    assert result["file"] == str(tmp_path / "good.py")
    assert "has no attribute 'proces'" in result["error"]


def test_a_syntax_error_names_the_file_and_line(tmp_path):
    code, result = run_check(tmp_path, "broken.process")
    assert code == 2
    assert result["file"] == str(tmp_path / "broken.py")
    assert "SyntaxError" in result["error"] and "line 1" in result["error"]


def test_an_exception_at_import_is_named(tmp_path):
    code, result = run_check(tmp_path, "failing.process")
    assert code == 2
    assert "KeyError: 'MODEL_PATH'" in result["error"]
    assert result["file"] == str(tmp_path / "failing.py")


def test_the_handlers_tokenize_py_wins_over_the_standard_library(tmp_path):
    code, result = run_check(tmp_path, "tokenize.process")
    assert code == 0, result
    assert result["file"] == str(tmp_path / "tokenize.py")


def test_a_bad_runtime_setting_fails_the_check(tmp_path):
    code, result = run_check(tmp_path, "good.process", ASYA_LOG_LEVEL="verbose")
    assert code == 2
    assert 'ASYA_LOG_LEVEL="verbose" is not valid' in result["error"]
    code, result = run_check(tmp_path, "good.process", ASYA_HANDLER_MODE="batch")
    assert code == 2 and 'ASYA_HANDLER_MODE="batch"' in result["error"]


def test_output_of_the_module_does_not_hide_the_answer(tmp_path):
    code, result = run_check(tmp_path, "noisy.process")
    assert code == 0 and result["ok"] is True


def test_the_check_creates_no_socket_or_ready_file(tmp_path):
    socket_path = tmp_path / "rt.sock"
    code, _ = run_check(tmp_path, "good.process", ASYA_SOCKET_PATH=str(socket_path))
    assert code == 0
    assert not socket_path.exists() and not (tmp_path / "runtime-ready").exists()
