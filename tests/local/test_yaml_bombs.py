"""YAML alias bombs and deep nesting against every command that reads YAML (issue 11, item 7).

Before the guard (src/common/yaml_limits.hpp), a 692-byte manifest with nested anchors under
`resources` made `asya render` abort with std::bad_alloc, and an 866-byte one kept `asya up` and
`asya render` busy for more than 30 s. Each must now be refused at once with the file, the line
and the limit that was hit, exit 2, and nothing started or printed on stdout. The subprocess
timeout (20 s) is only a generous bound that turns a hang into a failure, not a speed test.
"""
import pathlib

import pytest

HEADER = """apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata: {name: bomb}
spec:
  workload:
    template:
      spec:
        containers:
        - name: asya-runtime
          env: [{name: ASYA_HANDLER, value: handler.run}]
          resources:
"""


def pad(text, size):
    """`text` with a trailing comment line making it exactly `size` bytes."""
    missing = size - len(text.encode())
    assert missing >= 3, f"the bomb is {len(text)} bytes, more than {size}"
    return text + "#" + "x" * (missing - 2) + "\n"


def list_bomb(size=692, levels=9, width=9):
    """Anchors a..i under `resources`, each a list of `width` aliases of the one before: 9^9
    (387 million) nodes when expanded."""
    names = "abcdefghijklmnopqrstuvwxyz"
    lines = [f"            a: &a [{','.join(['x'] * width)}]\n"]
    for level in range(1, levels):
        alias = "*" + names[level - 1]
        lines.append(f"            {names[level]}: &{names[level]} [{','.join([alias] * width)}]\n")
    return pad(HEADER + "".join(lines), size)


def mapping_bomb(size=866, levels=12):
    """Anchors a..l under `resources`, each a mapping of four aliases of the one before: 4^12
    (16 million) entries when expanded."""
    names = "abcdefghijklmnopqrstuvwxyz"
    lines = ["            a: &a {p: x, q: x, r: x, s: x}\n"]
    for level in range(1, levels):
        alias = "*" + names[level - 1]
        lines.append(f"            {names[level]}: &{names[level]} "
                     f"{{p: {alias}, q: {alias}, r: {alias}, s: {alias}}}\n")
    return pad(HEADER + "".join(lines), size)


def routes_bomb():
    lines = ["routes:\n", "  r0: &r0 [a, a, a, a, a, a, a, a, a]\n"]
    for level in range(1, 9):
        lines.append(f"  r{level}: &r{level} [" + ", ".join([f"*r{level - 1}"] * 9) + "]\n")
    return "".join(lines)


GOOD_ACTOR = HEADER.replace("bomb", "good").replace("          resources:\n", "")


def test_the_bombs_are_the_reported_sizes():
    assert len(list_bomb().encode()) == 692
    assert len(mapping_bomb().encode()) == 866


@pytest.mark.parametrize("bomb", [list_bomb, mapping_bomb])
@pytest.mark.parametrize("command", ["render", "up"])
def test_alias_bomb_manifest_is_refused_at_once(asya, tmp_path, bomb, command):
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb())
    out = asya.run(command, path, timeout=20)
    assert out.returncode == 2, out
    assert out.stdout == ""
    assert f"{path}:" in out.stderr, out.stderr
    assert "YAML aliases expand to more than 100000 nodes" in out.stderr, out.stderr
    assert "bad_alloc" not in out.stderr
    assert not (asya.state / "status.json").exists()  # `asya up` started nothing


def test_alias_bomb_routes_file_is_refused_by_up_and_render(asya, tmp_path):
    (tmp_path / "good.yaml").write_text(GOOD_ACTOR)
    routes = tmp_path / "routes.yaml"
    routes.write_text(routes_bomb())
    for args in (["up", "--routes", routes, tmp_path / "good.yaml"],
                 ["render", "--routes", routes, tmp_path / "good.yaml"]):
        out = asya.run(*args, timeout=20)
        assert out.returncode == 2, out
        assert out.stdout == ""
        assert f"{routes}:" in out.stderr, out.stderr
        assert "YAML aliases expand to more than 100000 nodes" in out.stderr, out.stderr
    assert not (asya.state / "status.json").exists()


def test_deep_nesting_says_how_deep_and_where(asya, tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text(HEADER.replace("bomb", "deep") + "            limits: " + "[" * 5000 +
                    "]" * 5000 + "\n")
    for command in ("render", "up"):
        out = asya.run(command, path, timeout=20)
        assert out.returncode == 2, out
        assert (f"{path}:12: nested too deeply: depth 101 exceeds the limit of 100 mappings "
                "and lists inside each other") in out.stderr, out.stderr
        assert "bad file" not in out.stderr


def test_a_stray_comma_yaml_cpp_would_loop_on_is_an_error(asya, tmp_path):
    """Found by fuzz_yaml_readers: yaml-cpp 0.7 starts empty documents at a "," forever, so
    `asya render` and `asya up` hung on this file."""
    path = tmp_path / "comma.yaml"
    path.write_text(GOOD_ACTOR + "---\n# the next actor\n   ,1 spec: {}\n")
    for command in ("render", "up"):
        out = asya.run(command, path, timeout=20)
        assert out.returncode == 2, out
        assert out.stdout == ""
        assert (f'{path}:13: invalid YAML: unexpected "," where a document should start'
                in out.stderr), out.stderr
