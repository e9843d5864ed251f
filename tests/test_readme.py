"""The README cannot rot: its `$ vecpipe ...` examples run and print what it
shows, and every other vecpipe command line in it parses (the subcommand and
every option exist)."""
import os
import re
import shlex
import subprocess
import sys

import click
import pytest

from conftest import REPO
from vecpipe.cli.main import cli

README = (REPO / "README.md").read_text(encoding="utf-8")


def code_lines():
    """Lines of the indented code blocks, with backslash continuations joined."""
    out, pending = [], ""
    for line in README.splitlines():
        if not line.startswith("    "):
            pending = ""
            continue
        text = pending + line[4:].strip()
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = ""
        out.append(text)
    return out


def examples():
    """($ command, expected output) pairs."""
    found = []
    lines = README.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("    $ "):
            expected = []
            for nxt in lines[i + 1 :]:
                if not nxt.startswith("    ") or nxt.startswith("    $ "):
                    break
                expected.append(nxt[4:])
            found.append((line[6:], "\n".join(expected) + "\n"))
    return found


@pytest.mark.parametrize("command,expected", examples())
def test_readme_example_prints_what_the_readme_shows(command, expected):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    proc = subprocess.run(["bash", "-c", "set -o pipefail; " + command], capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected


def vecpipe_invocations():
    calls = []
    for line in code_lines():
        line = re.sub(r"#\s.*$", "", line)  # a trailing comment
        if "vecpipe" not in line or line.startswith("$ "):
            continue
        for segment in re.split(r"\||&&|;|\$\(|\)", line):
            try:
                words = shlex.split(segment)
            except ValueError:
                continue
            if "vecpipe" in words:
                words = words[words.index("vecpipe") + 1 :]
                args = []
                for w in words:
                    if w in (">", "<", ">>", "2>") or w.startswith((">", "<")):
                        break
                    args.append(w)
                calls.append(args)
    return calls


def test_every_readme_command_line_parses():
    calls = vecpipe_invocations()
    assert len(calls) > 40
    for args in calls:
        ctx = click.Context(cli, info_name="vecpipe")
        _, rest, _ = cli.make_parser(ctx).parse_args(list(args))  # the group's own options
        name, *rest = rest
        cmd = cli.get_command(ctx, name)
        assert cmd is not None, f"README: no command {name!r} in: vecpipe {' '.join(args)}"
        while isinstance(cmd, click.Group) and rest and not rest[0].startswith("-"):
            sub = rest.pop(0)
            cmd = cmd.get_command(ctx, sub)
            assert cmd is not None, f"README: no command {sub!r} in: vecpipe {' '.join(args)}"
        try:
            # the parser alone: unknown options and missing option values fail, files need not exist
            cmd.make_parser(click.Context(cmd, info_name=name, parent=ctx)).parse_args(list(rest))
        except click.UsageError as exc:
            pytest.fail(f"README: vecpipe {' '.join(args)}: {exc.format_message()}")
