"""How vecpipe writes outputs: it never deletes what it did not make (exit 73),
locks every output of a run (exit 75), commits side outputs before the main
one, streams npy into a closed pipe quietly, writes into devices and FIFOs,
and makes an output's missing parent folders."""
import contextlib
import fcntl
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from conftest import REPO

ZH = "builtin:zh-classic"
ZH_DIR = REPO / "core" / "builtin" / "zh-classic"


@pytest.fixture
def keep(tmp_path):
    """A folder of the user's that no command may delete."""
    folder = tmp_path / "keep"
    folder.mkdir()
    (folder / "notes.txt").write_text("x\n")
    return folder


def _kept(folder):
    assert folder.is_dir() and (folder / "notes.txt").read_text() == "x\n"
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


@pytest.fixture
def sentences(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("孙悟空大闹天宫\n林黛玉独自葬花\n诸葛亮草船借箭\n", encoding="utf-8")
    return path


@pytest.fixture
def analogy_file(tmp_path):
    path = tmp_path / "ca8.txt"
    path.write_text(": A\n宝玉 袭人 黛玉 紫鹃\n", encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    path = tmp_path / "corpus.txt"
    path.write_text("".join(" ".join(rng.choice(words, 10)) + "\n" for _ in range(200)))
    return path


def _no_leftovers(folder):
    """No temporary, lock or swapped-out folder is left beside the outputs."""
    hidden = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert hidden == []


# ---------------------------------------------------------------- 1. never delete what vecpipe did not make

FILE_OUTPUT_COMMANDS = {
    "knn": lambda f: ["knn", "-m", ZH, "悟空"],
    "knn-flat": lambda f: ["knn", "-m", ZH, "悟空", "--flat"],
    "sim": lambda f: ["sim", "-m", ZH, f["pairs"]],
    "sim-matrix-npy": lambda f: ["sim", "-m", ZH, "--matrix", f["sentences"]],
    "encode-jsonl": lambda f: ["encode", "-m", ZH, f["sentences"]],
    "encode-npy-stream": lambda f: ["encode", "-m", ZH, f["sentences"], "--to", "npy"],
    "convert-word2vec": lambda f: ["convert", ZH_DIR, "--to", "word2vec", "--limit", "5"],
    "convert-bin": lambda f: ["convert", ZH_DIR, "--to", "word2vec-bin", "--limit", "5"],
    "eval-analogy": lambda f: ["eval", "analogy", "-m", ZH, f["analogy"]],
    "eval-report": lambda f: ["eval", "report", f["result"]],
}


@pytest.mark.parametrize("name", sorted(FILE_OUTPUT_COMMANDS))
def test_a_file_output_onto_an_existing_folder_is_refused_and_the_folder_kept(
        invoke, tmp_path, keep, sentences, analogy_file, name):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("悟空\t行者\n", encoding="utf-8")
    result = tmp_path / "r.json"
    assert invoke("eval", "analogy", "-m", ZH, analogy_file, "-o", result).exit_code == 0
    args = FILE_OUTPUT_COMMANDS[name]({"pairs": pairs, "sentences": sentences, "analogy": analogy_file, "result": result})
    r = invoke("-q", *args, "-o", keep)
    assert r.exit_code == 73, r.output
    assert f"{keep}: is a folder" in r.output and "Traceback" not in r.output
    _kept(keep)
    _no_leftovers(tmp_path)


def test_encode_npy_output_onto_a_folder_named_like_npy_is_refused(invoke, tmp_path, sentences):
    folder = tmp_path / "v.npy"
    folder.mkdir()
    (folder / "notes.txt").write_text("x\n")
    r = invoke("encode", "-m", ZH, sentences, "-o", folder)
    assert r.exit_code == 73 and f"{folder}: is a folder" in r.output
    _kept(folder)


@pytest.mark.parametrize("option", ["--ids-out", "--ranges-out"])
def test_encode_side_output_onto_a_folder_is_refused_before_anything_is_written(invoke, tmp_path, keep, sentences, option):
    out = tmp_path / "v.npy"
    r = invoke("encode", "-m", ZH, sentences, "-o", out, "--precision", "int8", option, keep)
    assert r.exit_code == 73 and f"{keep}: is a folder" in r.output, r.output
    _kept(keep)
    assert not out.exists()
    _no_leftovers(tmp_path)


@pytest.mark.parametrize("command", ["convert", "train-w2v"])
def test_a_vecdir_onto_a_folder_vecpipe_did_not_make_is_refused(invoke, tmp_path, keep, corpus, command):
    src = ZH_DIR if command == "convert" else corpus
    r = invoke(command, src, "-o", keep, *(["--epochs", "1", "--dim", "4"] if command == "train-w2v" else ["--limit", "5"]))
    assert r.exit_code == 73, r.output
    assert f"{keep}: the folder exists and is not a vecdir made by vecpipe" in r.output
    _kept(keep)
    _no_leftovers(tmp_path)


def test_train_side_outputs_onto_a_folder_are_refused(invoke, tmp_path, keep, corpus):
    out = tmp_path / "w.vecdir"
    r = invoke("train-w2v", corpus, "--epochs", "1", "--dim", "4", "--context-vectors", keep, "-o", out)
    assert r.exit_code == 73 and str(keep) in r.output
    r = invoke("train-w2v", corpus, "--epochs", "1", "--dim", "4", "--model", "fasttext", "--fasttext-bin", keep, "-o", out)
    assert r.exit_code == 73 and f"{keep}: is a folder" in r.output
    _kept(keep)
    assert not out.exists()


def test_a_vecdir_made_by_vecpipe_is_replaced(invoke, tmp_path):
    out = tmp_path / "o.vecdir"
    assert invoke("convert", ZH_DIR, "--limit", "5", "-o", out).exit_code == 0
    assert len((out / "vocab.txt").read_text(encoding="utf-8").splitlines()) == 5
    r = invoke("convert", ZH_DIR, "--limit", "7", "-o", out)
    assert r.exit_code == 0, r.output
    assert len((out / "vocab.txt").read_text(encoding="utf-8").splitlines()) == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.vecdir"]


def test_a_vecdir_holding_a_file_of_the_user_is_not_replaced(invoke, tmp_path):
    out = tmp_path / "o.vecdir"
    assert invoke("convert", ZH_DIR, "--limit", "5", "-o", out).exit_code == 0
    (out / "notes.txt").write_text("mine\n")
    r = invoke("convert", ZH_DIR, "--limit", "7", "-o", out)
    assert r.exit_code == 73 and "notes.txt" in r.output, r.output
    assert (out / "notes.txt").read_text() == "mine\n"
    assert len((out / "vocab.txt").read_text(encoding="utf-8").splitlines()) == 5


def test_a_vecdir_goes_into_an_empty_folder(invoke, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert invoke("convert", ZH_DIR, "--limit", "5", "-o", out).exit_code == 0
    assert (out / "meta.json").is_file()


def test_a_vecdir_onto_an_existing_file_is_refused(invoke, tmp_path):
    out = tmp_path / "mine"
    out.write_text("precious\n")
    r = invoke("convert", ZH_DIR, "--limit", "5", "-o", out)
    assert r.exit_code == 73 and f"{out}: is a file" in r.output, r.output
    assert out.read_text() == "precious\n"


def test_a_file_output_still_replaces_a_file(invoke, tmp_path):
    out = tmp_path / "o.txt"
    out.write_text("old\n")
    assert invoke("convert", ZH_DIR, "--limit", "2", "-o", out).exit_code == 0
    assert out.read_text(encoding="utf-8").startswith("2 100\n")


def test_help_and_readme_name_exit_73(invoke):
    r = invoke("--help")
    assert "73 cannot create" in " ".join(r.output.split())
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert "73 cannot create" in readme


# ---------------------------------------------------------------- 2. side outputs: locked, committed before the main one


def _hold_lock(path):
    fh = open(path.with_name(f".{path.name}.lock"), "a+")
    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    fh.write("4242")
    fh.flush()
    return fh


@pytest.mark.parametrize("side", ["ids", "ranges"])
def test_a_side_output_in_use_by_another_run_exits_75(invoke, tmp_path, sentences, side):
    shared = tmp_path / ("shared.ids" if side == "ids" else "shared.ranges.npy")
    shared.write_bytes(b"the other run's\n")
    lock = _hold_lock(shared)
    try:
        option = "--ids-out" if side == "ids" else "--ranges-out"
        r = invoke("encode", "-m", ZH, sentences, "-o", tmp_path / "b.npy", "--precision", "int8", option, shared)
    finally:
        lock.close()
    assert r.exit_code == 75, r.output
    assert f"{shared} is being written by another vecpipe run (pid 4242)" in r.output
    assert shared.read_bytes() == b"the other run's\n"
    assert not (tmp_path / "b.npy").exists()


@pytest.mark.parametrize("args", [
    ["convert", ZH_DIR, "--limit", "3"],
    ["knn", "-m", ZH, "悟空"],
])
def test_every_command_locks_its_output(invoke, tmp_path, args):
    out = tmp_path / "o.txt"
    lock = _hold_lock(out)
    try:
        r = invoke(*args, "-o", out)
    finally:
        lock.close()
    assert r.exit_code == 75 and "pid 4242" in r.output, r.output
    assert not out.exists()


def test_two_outputs_of_one_run_must_differ(invoke, tmp_path, sentences, corpus):
    out = tmp_path / "v.npy"
    r = invoke("encode", "-m", ZH, sentences, "-o", out, "--ids-out", out)
    assert r.exit_code == 64 and f"-o and --ids-out name the same file ({out})" in r.output
    r = invoke("encode", "-m", ZH, sentences, "-o", out, "--precision", "int8", "--ranges-out", out)
    assert r.exit_code == 64 and "-o and --ranges-out name the same file" in r.output
    vec = tmp_path / "w.vecdir"
    r = invoke("train-w2v", corpus, "--epochs", "1", "--dim", "4", "-o", vec, "--context-vectors", vec)
    assert r.exit_code == 64 and "-o and --context-vectors name the same file" in r.output
    assert not out.exists() and not vec.exists()


@pytest.mark.parametrize("interrupt_at", ["ids", "ranges"])
def test_an_interrupted_commit_never_leaves_the_main_output_without_its_side_outputs(
        invoke, tmp_path, sentences, monkeypatch, interrupt_at):
    out, ids, ranges = tmp_path / "v.npy", tmp_path / "v.ids", tmp_path / "v.ranges.npy"
    real_replace = os.replace
    renamed = []

    def replace(src, dst, *a, **k):
        name = os.path.basename(dst)
        renamed.append(name)
        if name == {"ids": "v.ids", "ranges": "v.ranges.npy"}[interrupt_at]:
            raise KeyboardInterrupt
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    r = invoke("encode", "-m", ZH, sentences, "-o", out, "--ids-out", ids, "--precision", "int8", "--ranges-out", ranges)
    assert r.exit_code == 130
    assert not out.exists()
    monkeypatch.setattr(os, "replace", real_replace)
    renamed.clear()
    monkeypatch.setattr(os, "replace", lambda s, d, *a, **k: (renamed.append(os.path.basename(d)), real_replace(s, d))[1])
    r = invoke("encode", "-m", ZH, sentences, "-o", out, "--ids-out", ids, "--precision", "int8", "--ranges-out", ranges)
    assert r.exit_code == 0, r.output
    assert renamed[-1] == "v.npy" and {"v.ids", "v.ranges.npy"} <= set(renamed)
    assert np.load(out).shape == (3, 100) and np.load(ranges).shape == (2, 100)
    assert ids.read_text().splitlines() == ["1", "2", "3"]


# ---------------------------------------------------------------- 3. npy into a closed pipe


def test_npy_block_into_a_closed_pipe_raises_broken_pipe():
    from vecpipe.core.io.npy import write_npy_block

    r, w = os.pipe()

    def reader():  # like `head -c 100`
        os.read(r, 100)
        os.close(r)

    thread = threading.Thread(target=reader)
    thread.start()
    fh = open(w, "wb")
    with pytest.raises(BrokenPipeError):
        write_npy_block(fh, np.zeros((10000, 100), np.float32))
        fh.flush()
    thread.join(10)
    with contextlib.suppress(BrokenPipeError):
        fh.close()


@pytest.mark.parametrize("args", [
    ["encode", "-m", ZH, "{src}", "--to", "npy"],
    ["encode", "-m", ZH, "{src}"],
    ["convert", str(ZH_DIR), "--to", "word2vec-bin"],
    ["convert", str(ZH_DIR), "--to", "word2vec"],
])
def test_a_closed_pipe_ends_quietly_with_0(tmp_path, args):
    src = tmp_path / "s.txt"
    src.write_text("孙悟空大闹天宫\n林黛玉独自葬花\n" * 3000, encoding="utf-8")
    argv = [a.format(src=src) for a in args]
    proc = subprocess.Popen([sys.executable, "-m", "vecpipe", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert len(proc.stdout.read(100)) == 100
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 0, err
    assert err == ""


# ---------------------------------------------------------------- 4. devices and FIFOs


@pytest.mark.parametrize("args", [
    ["convert", ZH_DIR, "--limit", "5"],
    ["convert", ZH_DIR, "--limit", "5", "--to", "word2vec-bin"],
    ["train-w2v", "{corpus}", "--epochs", "1", "--dim", "4"],
    ["train-w2v", "{corpus}", "--epochs", "1", "--dim", "4", "--context-vectors", "/dev/null"],
    ["encode", "-m", ZH, "{sentences}", "--ids-out", "/dev/null", "--precision", "int8"],
    ["encode", "-m", ZH, "{sentences}", "--to", "npy"],
    ["knn", "-m", ZH, "悟空"],
])
def test_dev_null_is_an_output(invoke, corpus, sentences, args):
    argv = [str(a).format(corpus=corpus, sentences=sentences) for a in args]
    r = invoke(*argv, "-o", "/dev/null")
    assert r.exit_code == 0, r.output
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")


@pytest.mark.parametrize("command", ["convert", "train-w2v"])
def test_a_vecdir_cannot_go_into_a_device(invoke, corpus, command):
    src = ZH_DIR if command == "convert" else corpus
    r = invoke(command, src, "--to", "vecdir", "-o", "/dev/null", *(["--epochs", "1", "--dim", "4"] if command == "train-w2v" else []))
    assert r.exit_code == 64, r.output
    assert "/dev/null: a vecdir is a folder and cannot be written into a device or pipe" in r.output


def test_convert_into_a_fifo_streams_word2vec_text(invoke, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    r = invoke("convert", ZH_DIR, "--limit", "2", "-o", fifo)
    reader.join(10)
    assert r.exit_code == 0, r.output
    assert got[0].decode("utf-8").splitlines()[0] == "2 100"
    assert fifo.is_fifo()


# ---------------------------------------------------------------- 5. missing parent folders


@pytest.mark.parametrize("args,name", [
    (["convert", ZH_DIR, "--limit", "3"], "new/deep/o.vecdir"),
    (["convert", ZH_DIR, "--limit", "3"], "new/deep/o.txt"),
    (["encode", "-m", ZH, "{sentences}"], "new/deep/o.npy"),
    (["knn", "-m", ZH, "悟空"], "new/deep/o.jsonl"),
    (["train-w2v", "{corpus}", "--epochs", "1", "--dim", "4"], "new/deep/o.vecdir"),
])
def test_missing_parent_folders_are_made(invoke, tmp_path, corpus, sentences, args, name):
    argv = [str(a).format(corpus=corpus, sentences=sentences) for a in args]
    r = invoke(*argv, "-o", tmp_path / name)
    assert r.exit_code == 0, r.output
    assert (tmp_path / name).exists()
    _no_leftovers(tmp_path / "new" / "deep")


def test_encode_side_outputs_get_their_folders_too(invoke, tmp_path, sentences):
    r = invoke("encode", "-m", ZH, sentences, "-o", tmp_path / "a" / "v.npy", "--ids-out", tmp_path / "b" / "v.ids",
               "--precision", "int8", "--ranges-out", tmp_path / "c" / "r.npy")
    assert r.exit_code == 0, r.output
    assert np.load(tmp_path / "a" / "v.npy").shape == (3, 100)
    assert (tmp_path / "b" / "v.ids").read_text().splitlines() == ["1", "2", "3"]
    assert np.load(tmp_path / "c" / "r.npy").shape == (2, 100)


def test_a_failed_run_removes_only_the_folders_it_made(invoke, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"2 3\na 1 2 3\nb 1 2\n")
    (tmp_path / "old").mkdir()
    r = invoke("convert", bad, "-o", tmp_path / "old" / "new" / "deeper" / "o.txt")
    assert r.exit_code == 65, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "old"]
    assert list((tmp_path / "old").iterdir()) == []


def test_a_parent_that_is_a_file_cannot_be_made(invoke, tmp_path):
    (tmp_path / "afile").write_text("x")
    r = invoke("convert", ZH_DIR, "--limit", "2", "-o", tmp_path / "afile" / "o.txt")
    assert r.exit_code == 73, r.output
    assert "cannot create" in r.output and "afile" in r.output
    assert (tmp_path / "afile").read_text() == "x"


def test_a_failed_encode_removes_the_folders_it_made(invoke, tmp_path):
    r = invoke("encode", "-m", ZH, tmp_path / "missing.txt", "-o", tmp_path / "a" / "v.npy", "--ids-out",
               tmp_path / "b" / "c" / "v.ids")
    assert r.exit_code == 66, r.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [
    ["convert", "{missing}"],
    ["convert", "{missing}", "--to", "jsonl"],
    ["eval", "analogy", "-m", ZH, "{missing}"],
    ["sim", "-m", ZH, "{missing}"],
])
def test_an_output_that_would_be_refused_is_refused_before_any_work(invoke, tmp_path, keep, args):
    argv = [a.format(missing=tmp_path / "missing.txt") for a in args]
    r = invoke(*argv, "-o", keep)
    assert r.exit_code == 73, r.output
    _kept(keep)
