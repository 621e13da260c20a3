"""`cmake --install` / `make install PREFIX=...` into a temporary prefix, then everything run from
there as a user would: every program's --help and --version, `asya version`, `asya up` with the
installed Python runtime, a C++ actor built out of tree with find_package(asya), the man pages
and the bash and zsh completion."""
import json
import os
import re
import shutil
import subprocess

import pytest

from install_harness import (ECHO_HANDLER, PROGRAMS, REPO, build_dir, echo_manifest,
                             make_environment, project_version, run_echo_pipeline,
                             user_environment)

EXPECTED_FILES = [
    *[f"bin/{program}" for program in PROGRAMS],
    "share/asya/asya_runtime.py",
    "include/asya/runtime.hpp",
    "lib/cmake/asya/asya-config.cmake",
    "lib/cmake/asya/asya-config-version.cmake",
    "lib/libasya_runtime.a",
    *[f"share/man/man1/{program}.1" for program in PROGRAMS],
    "share/bash-completion/completions/asya",
    "share/zsh/site-functions/_asya",
]


def test_install_puts_every_part_under_the_prefix(prefix):
    missing = [path for path in EXPECTED_FILES if not (prefix / path).is_file()]
    assert not missing, f"not installed under {prefix}: {missing}"
    for program in PROGRAMS:
        assert os.access(prefix / "bin" / program, os.X_OK), program


def test_make_install_with_prefix_installs_the_same_files(prefix, tmp_path):
    other = tmp_path / "make-prefix"
    result = subprocess.run(["make", "-s", "install", f"PREFIX={other}",
                             f"BUILD_DIR={build_dir()}"], cwd=REPO, capture_output=True,
                            text=True, timeout=300, env=make_environment())
    assert result.returncode == 0, result.stdout + result.stderr

    def files(root):
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files(other) == files(prefix)


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_exit_zero_without_side_effects(prefix, tmp_path, program, flag):
    """Run in an empty directory with an empty HOME: both must stay empty, the program must exit 0
    at once (asya-gateway used to ignore --help and serve on 0.0.0.0:8080)."""
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    try:
        result = subprocess.run([str(prefix / "bin" / program), flag], cwd=cwd,
                                env=user_environment(home), capture_output=True, text=True,
                                timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{program} {flag} did not exit within 20 s (is it serving?)")
    assert result.returncode == 0, f"{program} {flag}: {result.returncode}\n{result.stderr}"
    assert result.stderr == "", f"{program} {flag} wrote to stderr: {result.stderr}"
    if flag == "--version":
        assert result.stdout == f"{program} {project_version()}\n"
    else:
        assert program in result.stdout and "--version" in result.stdout, result.stdout
    assert list(cwd.iterdir()) == [], f"{program} {flag} created files in its cwd"
    assert list(home.iterdir()) == [], f"{program} {flag} created files in HOME"


@pytest.mark.parametrize("program", ["asya-sidecar", "asya-gateway"])
def test_environment_configured_programs_refuse_arguments(prefix, tmp_path, program):
    result = subprocess.run([str(prefix / "bin" / program), "--port", "9"], cwd=tmp_path,
                            env=user_environment(tmp_path), capture_output=True, text=True,
                            timeout=20)
    assert result.returncode == 2
    assert 'unknown argument "--port"' in result.stderr


def test_asya_version_names_every_part_of_the_prefix(prefix, tmp_path):
    result = subprocess.run([str(prefix / "bin" / "asya"), "version"], cwd=tmp_path,
                            env=user_environment(tmp_path), capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    version = project_version()
    lines = result.stdout.splitlines()
    assert lines == [
        f"asya {version}  ({prefix / 'bin' / 'asya'})",
        f"asya-sidecar {version}  ({prefix / 'bin' / 'asya-sidecar'})",
        f"asya-gateway {version}  ({prefix / 'bin' / 'asya-gateway'})",
        "runtime protocol 1",
        f"python runtime {version}  ({prefix / 'share' / 'asya' / 'asya_runtime.py'})",
    ], result.stdout


def test_asya_version_reports_a_missing_part(tmp_path):
    """A tree without asya-sidecar: the line says where asya looked, and the exit code is 3."""
    broken = tmp_path / "broken"
    (broken / "bin").mkdir(parents=True)
    shutil.copy(build_dir() / "src" / "cli" / "asya", broken / "bin" / "asya")
    result = subprocess.run([str(broken / "bin" / "asya"), "version"], cwd=tmp_path,
                            env=user_environment(tmp_path), capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 3, result.stdout + result.stderr
    assert re.search(r"^asya-sidecar not found: cannot find asya-sidecar next to .*broken/bin/asya",
                     result.stdout, re.M), result.stdout


def test_up_from_the_prefix_runs_the_installed_sidecar_and_python_runtime(installed_asya, prefix):
    (installed_asya.workdir / "echo_handler.py").write_text(ECHO_HANDLER)
    envelope, commands = run_echo_pipeline(installed_asya, echo_manifest(installed_asya.workdir))
    assert envelope["payload"] == {"echoed": "hi"}
    assert envelope["route"]["actors"] == ["echo"]
    sidecars = [c for c in commands if c[0].endswith("asya-sidecar")]
    runtimes = [c for c in commands if any(part.endswith("asya_runtime.py") for part in c)]
    assert sidecars and runtimes, commands
    assert all(c[0] == str(prefix / "bin" / "asya-sidecar") for c in sidecars), sidecars
    assert all(str(prefix / "share" / "asya" / "asya_runtime.py") in c for c in runtimes), runtimes


OUT_OF_TREE_CMAKE = """cmake_minimum_required(VERSION 3.20)
project(upper_actor CXX)
set(CMAKE_CXX_STANDARD 20)
find_package(asya {version} REQUIRED)
add_executable(upper-actor main.cpp)
target_link_libraries(upper-actor PRIVATE asya::runtime)
"""

OUT_OF_TREE_MAIN = """#include <asya/runtime.hpp>

#include <algorithm>
#include <cctype>
#include <string>

int main() {
  return asya::serve([](const asya::Json& payload) -> asya::Outputs {
    std::string text(payload.at("message").as_string());
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return boost::json::object{{"echoed", text}};
  });
}
"""


def test_out_of_tree_cpp_actor_builds_with_find_package_and_runs_under_asya_up(
        installed_asya, prefix, tmp_path):
    project = tmp_path / "upper"
    project.mkdir()
    (project / "CMakeLists.txt").write_text(OUT_OF_TREE_CMAKE.format(version=project_version()))
    (project / "main.cpp").write_text(OUT_OF_TREE_MAIN)
    env = user_environment(tmp_path)
    for step in (["cmake", "-S", str(project), "-B", str(project / "build"), "-G", "Ninja",
                  "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_PREFIX_PATH={prefix}"],
                 ["ninja", "-C", str(project / "build")]):
        result = subprocess.run(step, capture_output=True, text=True, env=env, timeout=600)
        assert result.returncode == 0, f"{' '.join(step)}\n{result.stdout}\n{result.stderr}"
    binary = project / "build" / "upper-actor"

    envelope, commands = run_echo_pipeline(
        installed_asya, echo_manifest(installed_asya.workdir, command=[str(binary)]))
    assert envelope["payload"] == {"echoed": "HI"}
    assert [str(binary)] in commands, commands


def test_man_pages_render_each_programs_help(prefix, tmp_path):
    for program in PROGRAMS:
        page = prefix / "share" / "man" / "man1" / f"{program}.1"
        result = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True,
                                env=dict(user_environment(tmp_path), MANWIDTH="200"), timeout=30)
        assert result.returncode == 0, result.stderr
        help_text = subprocess.run([str(prefix / "bin" / program), "--help"],
                                   capture_output=True, text=True, timeout=20).stdout
        first_line = help_text.splitlines()[0].replace(str(prefix / "bin" / program), program)
        assert "NAME" in result.stdout and f"{program} - " in result.stdout, result.stdout[:300]
        assert first_line in result.stdout, f"{program}.1 lacks {first_line!r}"
        assert f"asya {project_version()}" in result.stdout
    asya_page = (prefix / "share" / "man" / "man1" / "asya.1").read_text()
    for command in ["up", "down", "send", "results", "queues", "status", "logs", "render", "call",
                    "version"]:
        assert re.search(rf"^{command}$", asya_page, re.M), f"asya.1 lacks the {command} section"
    assert "/bin/asya" not in asya_page, "the page names the build path instead of `asya`"


def bash_complete(prefix, tmp_path, *words):
    """COMPREPLY of the installed bash completion for `asya WORDS...` (the last word is the one
    being completed)."""
    script = prefix / "share" / "bash-completion" / "completions" / "asya"
    quoted = " ".join(json.dumps(w) for w in [str(prefix / "bin" / "asya"), *words])
    program = (f"source {script}; COMP_WORDS=({quoted}); COMP_CWORD={len(words)}; _asya; "
               'printf "%s\\n" "${COMPREPLY[@]}"')
    result = subprocess.run(["bash", "-c", program], cwd=tmp_path, capture_output=True,
                            text=True, env=user_environment(tmp_path), timeout=60)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


def test_bash_completion_offers_commands_flags_and_files(prefix, tmp_path):
    commands = bash_complete(prefix, tmp_path, "")
    # every command of `asya --help`, in its order (commands added later come along by themselves)
    known = ["up", "down", "send", "results", "queues", "status", "logs", "render", "call",
             "version"]
    assert [c for c in commands if c in known] == known, commands
    assert all(re.fullmatch(r"[a-z][a-z-]*", c) for c in commands), commands
    assert bash_complete(prefix, tmp_path, "sen") == ["send"]
    assert bash_complete(prefix, tmp_path, "send", "--ro") == ["--route"]
    # the value of --state-dir is skipped when finding the command
    assert bash_complete(prefix, tmp_path, "--state-dir", "x", "up", "--det") == ["--detach"]
    (tmp_path / "pipeline.yaml").write_text("")
    assert bash_complete(prefix, tmp_path, "up", "pipe") == ["pipeline.yaml"]


def test_zsh_completion_offers_commands_and_flags(prefix, tmp_path):
    if not shutil.which("zsh"):
        pytest.fail("zsh is not installed (scripts/setup installs it)")
    script = prefix / "share" / "zsh" / "site-functions" / "_asya"
    asya = prefix / "bin" / "asya"
    program = f"""
compdef() {{ }}
compadd() {{ [[ $1 == -- ]] && shift; print -l -- "$@"; }}
_files() {{ print '<files>'; }}
source {script}
words=({asya} ''); CURRENT=2; PREFIX=''; print '== commands'; _asya
words=({asya} --state-dir x up --det); CURRENT=5; PREFIX=--det; print '== up flags'; _asya
words=({asya} send --payload ''); CURRENT=4; PREFIX=''; print '== payload value'; _asya
"""
    result = subprocess.run(["zsh", "-f", "-c", program], cwd=tmp_path, capture_output=True,
                            text=True, env=user_environment(tmp_path), timeout=60)
    assert result.returncode == 0, result.stderr
    sections = {}
    for block in result.stdout.split("== ")[1:]:
        title, *lines = block.splitlines()
        sections[title] = [line for line in lines if line]
    assert {"up", "down", "send", "version"} <= set(sections["commands"]), sections["commands"]
    assert "--detach" in sections["up flags"] and "--gateway-port" in sections["up flags"]
    assert "--route" not in sections["up flags"]
    assert sections["payload value"] == ["<files>"]


def test_gateway_help_lists_the_documented_variables(prefix):
    """`asya-gateway --help` (and so its man page) and docs/gateway.md's configuration table name
    the same variables."""
    text = (REPO / "docs" / "gateway.md").read_text()
    start = text.index("## Configuration")
    section = text[start:text.index("\n## ", start)]
    documented = set(re.findall(r"\bASYA_[A-Z0-9_]*[A-Z0-9]\b", section))
    help_text = subprocess.run([str(prefix / "bin" / "asya-gateway"), "--help"],
                               capture_output=True, text=True, timeout=20).stdout
    helped = set(re.findall(r"\bASYA_[A-Z0-9_]*[A-Z0-9]\b", help_text))
    assert documented - helped == set(), "documented in docs/gateway.md but not in --help"
    assert helped - documented == set(), "in --help but not documented in docs/gateway.md"


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_installed_python_runtime_answers_help_and_version_without_side_effects(prefix, tmp_path,
                                                                                flag):
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    runtime = prefix / "share" / "asya" / "asya_runtime.py"
    result = subprocess.run(["python3", str(runtime), flag], cwd=cwd, env=user_environment(home),
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    if flag == "--version":
        assert result.stdout == f"asya-runtime {project_version()}\n"
    else:
        assert "ASYA_HANDLER" in result.stdout and "--version" in result.stdout
    assert list(cwd.iterdir()) == [] and list(home.iterdir()) == []
