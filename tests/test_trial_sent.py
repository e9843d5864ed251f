"""A new user's trial of encode and eval sts/retrieval/classify: what tripped
them, each pinned by a test (fake model, no torch)."""
import numpy as np
import orjson
import pytest

from conftest import FakeEncoder, fake_vector


# -- encode: an empty input still gives a .npy of the model's width


@pytest.mark.parametrize("extra, shape, dtype", [
    ([], (0, 8), np.float32),
    (["--truncate-dim", "4"], (0, 4), np.float32),
    (["--precision", "float16"], (0, 8), np.float16),
    (["--precision", "ubinary"], (0, 1), np.uint8),
    (["--precision", "int8", "--calibration", "RANGES"], (0, 8), np.int8),
])
def test_encode_empty_input_gives_zero_rows_of_the_model_width(tmp_path, invoke, extra, shape, dtype):
    src = tmp_path / "empty.txt"
    src.write_bytes(b"")
    ranges = tmp_path / "ranges.npy"
    np.save(ranges, np.stack([-np.ones(8), np.ones(8)]).astype(np.float32))
    extra = [str(ranges) if a == "RANGES" else a for a in extra]
    r = invoke("encode", "-m", "fake:8", src, "-o", tmp_path / "e.npy", *extra)
    assert r.exit_code == 0, r.stderr
    got = np.load(tmp_path / "e.npy")
    assert got.shape == shape and got.dtype == dtype  # (0, 0) before: np.vstack with earlier rows failed


def test_encode_empty_input_resumable_too(tmp_path, invoke):
    src = tmp_path / "empty.jsonl"
    src.write_bytes(b"\n")
    r = invoke("encode", "-m", "fake:8", src, "-o", tmp_path / "e.npy", "--resume")
    assert r.exit_code == 0, r.stderr
    assert np.load(tmp_path / "e.npy").shape == (0, 8)


# -- encode: blank lines of a text file are not rows; say so


def test_encode_says_when_blank_lines_of_a_text_file_are_skipped(tmp_path, invoke):
    src = tmp_path / "t.txt"
    src.write_text("你好\n\n世界\n\u3000\u3000\n再见\n", encoding="utf-8")
    r = invoke("encode", "-m", "fake:8", src, "-o", tmp_path / "t.npy")
    assert r.exit_code == 0, r.stderr
    assert np.load(tmp_path / "t.npy").shape == (3, 8)
    assert "2 blank lines" in r.stderr and "--ids-out" in r.stderr
    # JSONL: a blank line is no record, nothing to say
    (tmp_path / "t.jsonl").write_text('{"text": "你好"}\n\n{"text": "世界"}\n', encoding="utf-8")
    r = invoke("encode", "-m", "fake:8", tmp_path / "t.jsonl", "-o", tmp_path / "j.npy")
    assert r.exit_code == 0 and "blank" not in r.stderr


# -- encode --resume: the closing line counts what this run encoded


@pytest.mark.parametrize("name", ["t.txt", "t.tsv"])
def test_resumed_run_reports_the_texts_it_encoded(tmp_path, invoke, monkeypatch, name):
    src = tmp_path / name
    texts = [f"第{i}句" for i in range(10)]
    lines = texts if name.endswith(".txt") else [f"id{i}\t{t}" for i, t in enumerate(texts)]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    real = FakeEncoder.encode_batch
    calls = {"n": 0}

    def dies_on_the_third_window(self, batch, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, batch, **kw)

    monkeypatch.setattr(FakeEncoder, "encode_batch", dies_on_the_third_window)
    r = invoke("encode", "-m", "fake:8", src, "-o", tmp_path / "t.npy", "--window", "3", "--resume")
    assert r.exit_code == 130
    monkeypatch.setattr(FakeEncoder, "encode_batch", real)
    r = invoke("-v", "encode", "-m", "fake:8", src, "-o", tmp_path / "t.npy", "--window", "3", "--resume")
    assert r.exit_code == 0, r.stderr
    assert "resuming after 6 records" in r.stderr
    assert "encoded 4 texts" in r.stderr and "10 in all" in r.stderr
    expected = np.stack([fake_vector(t, 8) for t in texts])
    np.testing.assert_array_equal(np.load(tmp_path / "t.npy"), expected)


# -- eval sts: an empty sentence is a broken line, not a pair scored 0


def _stops_then_skips(invoke, args, error: str) -> dict:
    """The bad line stops the run (65, one line naming it); --on-error skip
    goes on: the result."""
    r = invoke(*args)
    assert r.exit_code == 65
    assert r.stderr.strip().splitlines() == [f"vecpipe: error: {error}"]
    r = invoke(*args, "--on-error", "skip")
    assert r.exit_code == 0, r.stderr
    return orjson.loads(r.stdout_bytes)


def test_sts_empty_sentence_is_a_bad_line(tmp_path, invoke):
    rows = [f"句子{i}\t另一句{i}\t{i % 5}" for i in range(20)]
    rows[7] = "\t另一句7\t3"
    src = tmp_path / "pairs.tsv"
    src.write_text("\n".join(rows) + "\n", encoding="utf-8")
    res = _stops_then_skips(invoke, ("eval", "sts", "-m", "fake:8", src), f"{src}:8: empty sentence")
    assert res["counts"]["pairs"] == 19 and res["counts"]["bad_lines"] == 1
    (tmp_path / "p.jsonl").write_text('{"sentence1": "a", "sentence2": " ", "label": 1}\n', encoding="utf-8")
    r = invoke("eval", "sts", "-m", "fake:8", tmp_path / "p.jsonl")
    assert r.exit_code == 65 and "p.jsonl:1: empty sentence" in r.stderr


# -- eval classify: a file whose first column is no label


def test_classify_on_a_pair_file_says_the_labels_look_wrong_in_one_short_line(tmp_path, invoke):
    pytest.importorskip("sklearn")
    src = tmp_path / "test.txt"  # LCQMC: question1<TAB>question2<TAB>label, read as label<TAB>text
    src.write_text("".join(f"问题{i}是什么\t问题{i}怎么样\t{i % 2}\n" for i in range(200)), encoding="utf-8")
    r = invoke("eval", "classify", "-m", "fake:8", src)
    assert r.exit_code == 65, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) < 400, lines
    assert str(src) in lines[0] and "200 labels" in lines[0] and "--tsv-order" in lines[0]


def test_classify_a_label_with_one_text_is_bad_data_named_in_one_line(tmp_path, invoke):
    pytest.importorskip("sklearn")
    src = tmp_path / "l.tsv"
    src.write_text("".join(f"{'pos' if i % 2 else 'neg'}\t第{i}条评论\n" for i in range(40)) + "odd\t最后一条\n",
                   encoding="utf-8")
    r = invoke("eval", "classify", "-m", "fake:8", src)
    assert r.exit_code == 65, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"vecpipe: error: {src}: label 'odd' has only 1 text; a stratified split needs at least 2 per label "
        "(drop it, or give more)"]
    r = invoke("eval", "classify", "-m", "fake:8", src, "--folds", "5")
    assert r.exit_code == 65 and "--folds 5 needs at least 5 per label" in r.stderr


# -- --backend openvino: two lanes entering the first infer at once could hang


class _Request:
    def __init__(self, seen):
        self.seen = seen

    def infer(self, feeds):
        import time

        self.seen["inside"] += 1
        self.seen["most"] = max(self.seen["most"], self.seen["inside"])
        time.sleep(0.05)
        self.seen["inside"] -= 1
        return [feeds["x"] * 2]


def test_openvino_first_infer_runs_alone():
    import threading

    from vecpipe.core.models.openvino import OpenVinoEncoder

    enc = object.__new__(OpenVinoEncoder)  # no model: only the lanes' use of the session
    seen = {"inside": 0, "most": 0}
    enc._requests, enc._first, enc._warm = threading.local(), threading.Lock(), False
    enc.session = type("Compiled", (), {"create_infer_request": lambda self: _Request(seen)})()
    barrier = threading.Barrier(2)
    outs = []

    def lane(i):
        barrier.wait()
        outs.append(enc._run({"x": np.full(3, i)}))

    threads = [threading.Thread(target=lane, args=(i,)) for i in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert seen["most"] == 1 and enc._warm and len(outs) == 2
    # once warm, lanes run at once again
    seen["most"] = 0
    threads = [threading.Thread(target=lane, args=(i,)) for i in range(2)]
    barrier.reset()
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert seen["most"] == 2


_OV_RACE = """
import sys, threading, numpy as np, onnx
from onnx import helper, TensorProto
from vecpipe.core.models.openvino import OpenVinoEncoder
x = helper.make_tensor_value_info("x", TensorProto.INT64, [None, None])
y = helper.make_tensor_value_info("y", TensorProto.INT64, [None, None])
g = helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "g", [x], [y])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]); m.ir_version = 8
onnx.save(m, sys.argv[1])
enc = object.__new__(OpenVinoEncoder); enc.lanes = 2
enc.session = enc._open(sys.argv[1])
barrier = threading.Barrier(2)
def lane(i):
    barrier.wait()
    for _ in range(3):
        enc._run({"x": np.full((4, 7 + i), i, np.int64)})
ts = [threading.Thread(target=lane, args=(i,)) for i in range(2)]
[t.start() for t in ts]; [t.join() for t in ts]
"""


@pytest.mark.slow
def test_openvino_two_lanes_on_a_fresh_process_never_hang(tmp_path):
    """Before the fix: 3 of 20 fresh processes hung for good (measured)."""
    import subprocess
    import sys

    pytest.importorskip("openvino")
    pytest.importorskip("onnx")
    script = tmp_path / "race.py"
    script.write_text(_OV_RACE)
    for _ in range(20):
        proc = subprocess.run([sys.executable, str(script), str(tmp_path / "g.onnx")], timeout=60, capture_output=True)
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]


# -- an unreadable input: 66 in one line from core, not click's 64 usage block


_UNREADABLE_ARGS = [
    ("encode", "-m", "fake:8", "SECRET"),
    ("encode", "-m", "fake:8", "T", "--precision", "int8", "--calibration", "SECRET"),
    ("eval", "retrieval", "-m", "fake:8", "--queries", "SECRET", "--corpus", "T", "--qrels", "Q"),
    ("eval", "retrieval", "-m", "fake:8", "--queries", "T", "--corpus", "SECRET", "--qrels", "Q"),
    ("eval", "retrieval", "-m", "fake:8", "--queries", "T", "--corpus", "T", "--qrels", "SECRET"),
]


def _unreadable_setup(tmp_path, args):
    secret = tmp_path / "secret.txt"
    secret.write_text("a\tb\n", encoding="utf-8")
    (tmp_path / "t.tsv").write_text("a\t你好\n", encoding="utf-8")
    (tmp_path / "q.tsv").write_text("a\ta\t1\n", encoding="utf-8")
    names = {"SECRET": secret, "T": tmp_path / "t.tsv", "Q": tmp_path / "q.tsv"}
    return secret, [str(names.get(a, a)) for a in args]


@pytest.mark.parametrize("args", _UNREADABLE_ARGS)
def test_click_does_not_judge_readability(tmp_path, invoke, monkeypatch, args):
    """click's own check (os.access) answered 64 and a usage block; the files
    are now opened by core, which says 66 in one line when it cannot."""
    import os

    import click.types

    secret, args = _unreadable_setup(tmp_path, args)
    real = os.access
    monkeypatch.setattr(click.types.os, "access", lambda p, mode, *a, **k: False if str(p) == str(secret) else real(p, mode, *a, **k))
    r = invoke(*args)
    assert r.exit_code != 64 and "Usage:" not in r.stderr, r.stderr


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
                    reason="root reads any file")
@pytest.mark.parametrize("args", _UNREADABLE_ARGS)
def test_unreadable_input_exits_66_in_one_line(tmp_path, invoke, args):
    secret, args = _unreadable_setup(tmp_path, args)
    secret.chmod(0)
    r = invoke(*args)
    assert r.exit_code == 66
    assert r.stderr.strip().splitlines() == [f"vecpipe: error: {secret}: permission denied"]


def test_retrieval_empty_query_is_a_bad_line(tmp_path, invoke):
    (tmp_path / "queries.tsv").write_text("q1\t北京在哪里\nq2\t\nq3\t上海在哪里\n", encoding="utf-8")
    (tmp_path / "corpus.tsv").write_text("d1\t北京是首都\nd2\t\nd3\t上海是城市\n", encoding="utf-8")  # an empty doc: BEIR has them
    (tmp_path / "qrels.tsv").write_text("q1\td1\t1\nq2\td2\t1\nq3\td3\t1\n", encoding="utf-8")
    res = _stops_then_skips(invoke, ("eval", "retrieval", "-m", "fake:8", tmp_path),
                            f"{tmp_path / 'queries.tsv'}:2: empty text for id 'q2'")
    assert res["counts"]["queries"] == 2 and res["counts"]["corpus"] == 3


# -- encode reads TSV and CSV tables as records, not as lines of text


def _fake(texts):
    return np.stack([fake_vector(t, 8) for t in texts])


def test_encode_id_tab_text_tsv_encodes_the_text_alone(tmp_path, invoke):
    """CMRC2018-retrieval's queries.tsv, BEIR's layout: the id was encoded
    with the text, and --ids-out gave line numbers."""
    src = tmp_path / "queries.tsv"
    src.write_text("DEV_0_QUERY_0\t《战国无双3》是由哪两个公司合作开发的？\nDEV_0_QUERY_1\t男女主角亦有专属声优？\n",
                   encoding="utf-8")
    r = invoke("encode", "-m", "fake:8", src, "-o", tmp_path / "q.npy", "--ids-out", tmp_path / "q.ids")
    assert r.exit_code == 0, r.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "q.npy"), _fake(["《战国无双3》是由哪两个公司合作开发的？", "男女主角亦有专属声优？"]))
    assert (tmp_path / "q.ids").read_text() == '"DEV_0_QUERY_0"\n"DEV_0_QUERY_1"\n'
    r = invoke("encode", "-m", "fake:8", src)
    assert [orjson.loads(line)["id"] for line in r.stdout_bytes.splitlines()] == ["DEV_0_QUERY_0", "DEV_0_QUERY_1"]


def test_encode_csv_with_a_header_and_quoted_commas(tmp_path, invoke):
    src = tmp_path / "waimai.csv"
    src.write_text('\ufefflabel,review\n1,"很快，好吃，味道足"\n0,"送餐太慢, 凉了"\n', encoding="utf-8")
    r = invoke("encode", "-m", "fake:8", src, "--text-field", "review")
    assert r.exit_code == 0, r.stderr
    recs = [orjson.loads(line) for line in r.stdout_bytes.splitlines()]
    assert [(x["label"], x["review"]) for x in recs] == [("1", "很快，好吃，味道足"), ("0", "送餐太慢, 凉了")]
    np.testing.assert_array_equal(np.array([x["vector"] for x in recs], np.float32),
                                  _fake(["很快，好吃，味道足", "送餐太慢, 凉了"]))


def test_encode_table_of_more_columns_needs_the_text_column(tmp_path, invoke):
    src = tmp_path / "lcqmc.tsv"
    src.write_text("谁有狂三这张高清的\t这张高清图，谁有\t0\n英雄联盟什么英雄最好\t英雄联盟最好英雄是什么\n", encoding="utf-8")
    r = invoke("encode", "-m", "fake:8", src)
    assert r.exit_code == 64 and "--text-field N" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = invoke("encode", "-m", "fake:8", src, "--text-field", "2")
    assert r.exit_code == 65
    assert r.stderr.strip().splitlines() == [f"vecpipe: error: {src}:2: expected 3 tab-separated fields (as line 1), got 2"]
    r = invoke("encode", "-m", "fake:8", src, "--text-field", "2", "--on-error", "skip")
    assert r.exit_code == 0
    assert [orjson.loads(line)["2"] for line in r.stdout_bytes.splitlines()] == ["这张高清图，谁有"]


def test_retrieval_given_one_tsv_file_says_what_it_takes(tmp_path, invoke):
    src = tmp_path / "corpus.tsv"
    src.write_text("DEV_0\t《战国无双3》是光荣开发的\n", encoding="utf-8")
    r = invoke("eval", "retrieval", "-m", "fake:8", src)
    assert r.exit_code == 65
    assert r.stderr.strip().splitlines() == [  # was: "not JSON: unexpected character ..."
        f'vecpipe: error: {src}: not a SQuAD JSON file (no "data" list of articles with paragraphs); '
        "give a retrieval folder, or --queries, --corpus and --qrels"]


def test_knn_on_the_encode_of_an_empty_input(tmp_path, invoke):
    """encode's (0, dim) .npy of an empty input is an index of no rows: knn
    answers every query with no neighbour (it stopped with exit 70)."""
    (tmp_path / "empty.txt").write_bytes(b"")
    assert invoke("encode", "-m", "fake:8", tmp_path / "empty.txt", "-o", tmp_path / "e.npy").exit_code == 0
    q = invoke("encode", "-m", "fake:8", "--to", "npy", input="你好\n世界\n".encode())
    r = invoke("knn", "--index", tmp_path / "e.npy", "-k", "2", input=q.stdout_bytes)
    assert r.exit_code == 0, r.stderr
    assert [orjson.loads(line)["neighbors"] for line in r.stdout_bytes.splitlines()] == [[], []]


def test_classify_warns_of_test_labels_never_seen_in_training(tmp_path, invoke):
    pytest.importorskip("sklearn")
    (tmp_path / "train.tsv").write_text("".join(f"{'pos' if i % 2 else 'neg'}\t第{i}条\n" for i in range(20)),
                                        encoding="utf-8")
    test = tmp_path / "test.tsv"
    test.write_text("pos\t好\nmid\t一般\nmid\t还行\n", encoding="utf-8")
    r = invoke("eval", "classify", "-m", "fake:8", tmp_path / "train.tsv", "--test", test)
    assert r.exit_code == 0, r.stderr
    assert f"{test}: 1 test label(s) never seen in training ('mid'): their texts count as wrong" in r.stderr
