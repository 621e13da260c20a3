"""Example READMEs run as written: examples/cpp-echo's "by hand" block (a runtime, a sidecar,
asya-queue send and recv) prints exactly the line its README shows (issue 19: it said recv prints
the envelope; it prints a {body, delivery_count} wrapper)."""
import os
import re
import signal
import subprocess

from local_harness import REPO, build_dir


def test_cpp_echo_by_hand_block_prints_what_the_readme_shows(tmp_path):
    readme = (REPO / "examples" / "cpp-echo" / "README.md").read_text()
    block = re.search(r"## Run it behind a sidecar by hand\n.*?```sh\n(.*?)```", readme, re.S)
    assert block, "examples/cpp-echo/README.md has no by-hand block"
    script = block.group(1)
    shown = [line[2:] for line in script.splitlines() if line.startswith("# {")]
    assert len(shown) == 1, script  # the documented output of `asya-queue recv`
    script = script.replace("/tmp/asya-echo", str(tmp_path)).replace("build/", f"{build_dir()}/")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYA_")}
    # The runtime and the sidecar run in the background of the script and keep its output open:
    # output to files, wait for bash itself, then end its session.
    out_file, err_file = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out_file, "w") as out, open(err_file, "w") as err:
        proc = subprocess.Popen(["bash", "-e", "-c", script], stdout=out, stderr=err, env=env,
                                start_new_session=True)
        try:
            proc.wait(timeout=60)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    out, err = out_file.read_text(), err_file.read_text()
    assert proc.returncode == 0, err
    assert out.strip().splitlines()[-1] == shown[0], out + err
