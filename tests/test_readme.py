"""The README cannot rot: its `$ vecpipe ...` examples run and print what it
shows (a pipeline in bash, a plain command line in-process), and every other vecpipe command line in it parses (the subcommand and
every option exist)."""
import json
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
def test_readme_example_prints_what_the_readme_shows(command, expected, invoke):
    words = shlex.split(command)
    if words[0] == "vecpipe" and not set("|<>;&$`") & set(command):
        # a plain command line: the same entry point, in this process
        r = invoke(*words[1:])
        assert r.exit_code == 0, r.stderr
        assert r.stdout_bytes.decode("utf-8") == expected
        return
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


def makefile_example():
    """The Makefile of the README's "An experiment as a Makefile", as written."""
    lines = README.split("### An experiment as a Makefile", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("    CORPUS := "))
    block = []
    for line in lines[start:]:
        if not line.startswith("    "):
            break
        block.append(line[4:])
    return "\n".join(block) + "\n"


def test_readme_makefile_example_runs_with_make(tmp_path):
    """make builds every model, evaluates it and writes the report; the vecdirs
    survive (not deleted as intermediates) and a second make has nothing to do."""
    import shutil

    import numpy as np

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    (tmp_path / "Makefile").write_text(makefile_example())
    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(310)])  # just above --svd 300
    (tmp_path / "corpus.seg.txt").write_text("".join(" ".join(rng.choice(words, 10)) + "\n" for _ in range(600)))
    (tmp_path / "CA8").mkdir()
    (tmp_path / "CA8" / "morphological.txt").write_text(": A\nw1 w2 w3 w4\nw5 w6 w7 w8\n")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    proc = subprocess.run(["make", "-s", "-j3"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for model in ("sgns", "cbow", "ppmi"):
        meta = json.loads((tmp_path / "vec" / f"{model}.vecdir" / "meta.json").read_text())
        assert meta["dim"] == 300 and meta["rows"] > 300
        result = json.loads((tmp_path / "results" / f"{model}.ca8.json").read_text())
        assert result["task"] == "analogy"
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert all(f"vec/{m}.vecdir" in report for m in ("sgns", "cbow", "ppmi")), report
    assert subprocess.run(["make", "-q"], env=env, cwd=tmp_path).returncode == 0  # up to date
