"""docs/cli.md names every command and every flag of the `asya` binary, and the README's command
list names every command (issue 19). The commands and flags come from the binary's own `--help`
output, walked recursively, so one added later without its documentation fails here, naming
what is missing.

A flag counts as documented when docs/cli.md mentions it (`--json`, `-d`, as a whole word) in the
section of its command (a `## ` heading naming `asya <command>`), in the section of a parent
command, or in the introduction before the first section (where the options every command has
are described)."""
import re
import subprocess

import pytest

from local_harness import REPO, build_dir

CLI_MD = REPO / "docs" / "cli.md"
README = REPO / "README.md"


def asya_help(*words):
    binary = build_dir() / "src" / "cli" / "asya"
    if not binary.exists():
        pytest.fail(f"{binary} not built: ninja -C {build_dir()} asya")
    result = subprocess.run([str(binary), *words, "--help"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, f"asya {' '.join(words)} --help: {result.stderr}"
    return result.stdout


def section_lines(help_text, title):
    """The lines of a `Title:` section of CLI11 help, up to the next blank line or title."""
    lines, inside = [], False
    for line in help_text.splitlines():
        if line == title + ":":
            inside = True
        elif inside and (not line.strip() or not line.startswith(" ")):
            break
        elif inside:
            lines.append(line)
    return lines


def flags_of(help_text):
    """Every flag spelling of the Options section: `-d,--detach` gives -d and --detach."""
    flags = []
    for line in section_lines(help_text, "Options"):
        if not line.startswith("  -"):
            continue  # a description continued on its own line
        first = line.split()[0]
        flags += [name.split("=")[0] for name in first.split(",") if name.startswith("-")]
    return flags


def subcommands_of(help_text):
    return [line.split()[0] for line in section_lines(help_text, "Subcommands")
            if line.startswith("  ") and not line.startswith("   ")]


def commands(words=()):
    """(command words, its help) for every command and subcommand, depth first."""
    text = asya_help(*words)
    found = [(tuple(words), text)]
    for name in subcommands_of(text):
        found += commands((*words, name))
    return found


def doc_sections():
    """docs/cli.md as {command words: section text}; () is the introduction."""
    text = CLI_MD.read_text()
    parts = re.split(r"^## ", text, flags=re.M)
    sections = {(): parts[0]}
    for part in parts[1:]:
        heading = part.splitlines()[0]
        match = re.search(r"\basya((?: [a-z][-a-z]*)+)", heading)
        if match:
            words = tuple(match.group(1).split())
            sections[words] = sections.get(words, "") + part
    return sections


def mentions(text, flag):
    return re.search(r"(?<![-\w])" + re.escape(flag) + r"(?![-\w])", text) is not None


def test_docs_cli_md_names_every_command_and_flag():
    sections = doc_sections()
    all_commands = commands()
    assert len(all_commands) > 5, "asya --help lists no subcommands?"
    missing = []
    for words, help_text in all_commands:
        name = " ".join(("asya",) + words)
        if words and words not in sections:
            missing.append(f"`{name}`: no section (a `## ` heading naming `{name}`)")
            continue
        # The command's section, its parents' sections, the introduction.
        text = "".join(sections.get(words[:n], "") for n in range(len(words), -1, -1))
        for flag in flags_of(help_text):
            if not mentions(text, flag):
                missing.append(f"`{name}`: flag {flag}")
    assert not missing, "docs/cli.md does not document:\n" + "\n".join(missing)


def test_the_readme_command_list_names_every_command():
    readme = README.read_text()
    listing = re.search(r"The `asya` command \(([^)]*)\)", readme)
    assert listing, "README.md has no 'The `asya` command (...)' list"
    listed = set(re.findall(r"`([a-z][-a-z]*)`", listing.group(1)))
    missing = [name for name in subcommands_of(asya_help()) if name not in listed]
    assert not missing, f"README.md's command list lacks {missing}"


def test_the_check_sees_the_flags_of_a_command():
    """The parsing above reads real help output (not an empty list that would pass anything)."""
    up = asya_help("up")
    assert {"-d", "--detach", "--gateway-port", "--state-dir", "--help"} <= set(flags_of(up))
    assert {"up", "send", "call", "render"} <= set(subcommands_of(asya_help()))
    assert not mentions("--detached", "--detach") and mentions("`--detach`", "--detach")
    assert not mentions("--detach", "-d")
