"""The command line as a user meets it: exit codes and messages in-process
(click's CliRunner through vecpipe's real entry point), and real processes for
what only a process shows (pipes closed by `head`, signals, the console script,
what an interpreter imports)."""
import bz2
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, cjk_words, run_vecpipe, write_w2v_text
from vecpipe.cli.main import COMMANDS, cli
from vecpipe.core.vectors.readwrite import read_vectors


@pytest.fixture(scope="module")
def vec_file(tmp_path_factory):
    """Read-only for the tests that share it (it takes a second to write)."""
    words = cjk_words(5000, seed=7)
    x = np.random.default_rng(7).standard_normal((5000, 20)).astype(np.float32)
    return write_w2v_text(tmp_path_factory.mktemp("vec") / "v.txt", words, x), words, x


def test_help_and_convert_are_light(vec_file, tmp_path):
    """One fresh interpreter: --help and a command's help load no heavy library; convert loads no model library."""
    path, _, _ = vec_file
    code = (
        "import sys; from vecpipe.cli.main import main\n"
        "rc = main(['--help']); rc2 = main(['convert', '--help'])\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'gensim', 'scipy', 'polars', 'transformers') if m in sys.modules]\n"
        f"rc3 = main(['convert', {str(path)!r}, '-o', {str(tmp_path / 'o.vecdir')!r}])\n"
        "print(rc, rc2, heavy, rc3, [m for m in ('torch', 'sentence_transformers', 'gensim') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("0 0 [] 0 []")
    assert read_vectors(tmp_path / "o.vecdir").words[:3] == vec_file[1][:3]


def get_command(name):
    return cli.get_command(None, name)


def test_version_and_every_command_has_help_with_example(invoke):
    from vecpipe import __version__

    assert __version__ in invoke("--version").output
    for name, (_, short) in COMMANDS.items():
        assert get_command(name).get_short_help_str(limit=200) == short, "COMMANDS' short help is stale"
        result = invoke(name, "--help")
        assert result.exit_code == 0
        assert "Example" in result.output and f"vecpipe {name}" in result.output


def test_stdin_to_stdout_jsonl(vec_file, invoke):
    path, words, x = vec_file
    r = invoke("convert", "-", "--to", "jsonl", "--limit", "3", input=path.read_bytes())
    assert r.exit_code == 0, r.stderr
    recs = [json.loads(line) for line in r.stdout_bytes.splitlines()]
    assert [rec["word"] for rec in recs] == words[:3]
    np.testing.assert_array_equal(np.array([rec["vector"] for rec in recs], dtype=np.float32), x[:3])


def test_compressed_stdin(vec_file, invoke):
    path, words, _ = vec_file
    r = invoke("convert", "--to", "word2vec", input=bz2.compress(path.read_bytes()))
    assert r.exit_code == 0, r.stderr
    assert r.stdout_bytes.split(b"\n", 1)[0] == b"5000 20"
    back = np.array([line.split()[1:] for line in r.stdout_bytes.decode().splitlines()[1:]], dtype=np.float32)
    np.testing.assert_array_equal(back, np.array([line.split()[1:] for line in path.read_text().splitlines()[1:]], dtype=np.float32))


def test_pipe_closed_by_head_is_quiet(vec_file):
    path, words, _ = vec_file
    proc = subprocess.run(
        f"{sys.executable} -m vecpipe convert {path} --to glove | head -1",
        shell=True, capture_output=True, executable="/bin/bash",
    )
    assert proc.stdout.decode().split(" ")[0] == words[0]
    assert proc.stderr == b""
    status = subprocess.run(
        f"set -o pipefail; {sys.executable} -m vecpipe convert {path} --to glove | head -1 >/dev/null",
        shell=True, executable="/bin/bash",
    )
    assert status.returncode == 0


def test_missing_input_exit_66(tmp_path, invoke):
    r = invoke("convert", tmp_path / "nope.txt", "-o", tmp_path / "o.vecdir")
    assert r.exit_code == 66
    assert r.stderr.strip() == f"vecpipe: error: {tmp_path / 'nope.txt'}: no such file"
    assert not (tmp_path / "o.vecdir").exists()


def test_bad_data_exit_65_one_line_no_output(tmp_path, invoke):
    src = tmp_path / "bad.txt"
    src.write_text("3 2\na 1 2\nb 1 x\nc 3 4\n")
    out = tmp_path / "o.vecdir"
    r = invoke("convert", src, "-o", out)
    assert r.exit_code == 65
    assert r.stderr == f"vecpipe: error: {src}:3: not a number: 'x'\n"
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt"]
    r = invoke("--debug", "convert", src, "-o", out)
    assert r.exit_code == 65 and "Traceback" in r.stderr


def test_on_error_skip_counts(tmp_path, invoke):
    src = tmp_path / "bad.txt"
    src.write_text("a 1 2\nb 1 x\nc 3 4\n")
    r = invoke("convert", src, "--on-error", "skip", "-o", tmp_path / "o.jsonl")
    assert r.exit_code == 0
    assert "skipped 1 bad rows" in r.stderr
    assert read_vectors(tmp_path / "o.jsonl").words == ["a", "c"]


def test_header_mismatch_error_and_skip(tmp_path, invoke):
    src = tmp_path / "h.txt"
    src.write_text("4 2\na 1 2\nb 3 4\n")
    r = invoke("convert", src, "-o", tmp_path / "o.vecdir")
    assert r.exit_code == 65 and "the header says 4 rows but the file has 2" in r.stderr
    r = invoke("convert", src, "--on-error", "skip", "-o", tmp_path / "o.vecdir")
    assert r.exit_code == 0 and read_vectors(tmp_path / "o.vecdir").words == ["a", "b"]


def test_usage_errors_exit_64(tmp_path, vec_file, invoke):
    path, _, _ = vec_file
    assert invoke("convert", path, "--to", "nonsense").exit_code == 64
    assert invoke("nonsense").exit_code == 64
    r = invoke("convert", path, "--to", "vecdir")
    assert r.exit_code == 64 and "give it a name with -o" in r.stderr


def test_uncreatable_output_exit_73(vec_file, tmp_path, invoke):
    path, _, _ = vec_file
    (tmp_path / "afile").write_text("x")  # missing folders are made, but not below a file
    r = invoke("convert", path, "-o", tmp_path / "afile" / "such" / "dir" / "o.txt")
    assert r.exit_code == 73 and "cannot create" in r.stderr


def test_ctrl_c_exits_130_and_leaves_no_output(tmp_path, vec_file):
    path, _, _ = vec_file
    out = tmp_path / "o.vecdir"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vecpipe", "convert", "-", "-o", str(out)],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )
    proc.stdin.write(path.read_bytes()[:100000])  # part of the input; the rest never comes
    proc.stdin.flush()
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)  # stdin stays open: an EOF must not race the signal
    proc.stdin.close()
    err = proc.stderr.read()
    assert proc.returncode == 130, err
    assert b"interrupted" in err and b"Traceback" not in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".o.vecdir")]


def test_python_dash_m_and_console_script_agree(vec_file):
    path, _, _ = vec_file
    r = run_vecpipe("convert", path, "--to", "jsonl", "--limit", "1")
    exe = os.path.join(os.path.dirname(sys.executable), "vecpipe")
    proc = subprocess.run([exe, "convert", str(path), "--to", "jsonl", "--limit", "1"], capture_output=True)
    assert proc.returncode == 0 and proc.stdout == r.stdout


def test_generated_docs_are_current():
    """completions/ and man/ come from `make docs`; this fails when they are stale."""
    from vecpipe.cli.docs import render_all

    for rel, text in render_all().items():
        path = REPO / rel
        assert path.is_file(), f"{rel} is missing: run `make docs`"
        assert path.read_text(encoding="utf-8") == text, f"{rel} is stale: run `make docs`"
