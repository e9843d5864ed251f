"""convert learns Parquet (a `word` and a `vector` column), both ways, checked
against gensim's word2vec reader and numpy."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import write_w2v_text


def test_word2vec_to_parquet_and_back_equals_gensim(tmp_path, invoke, cjk_vectors):
    from gensim.models import KeyedVectors

    words, x = cjk_vectors
    src = write_w2v_text(tmp_path / "v.vec", words, x)
    r = invoke("convert", src, "-o", tmp_path / "v.parquet")
    assert r.exit_code == 0, r.stderr
    table = pq.read_table(tmp_path / "v.parquet")
    assert table.column_names == ["word", "vector"]
    assert table.schema.field("vector").type == pa.list_(pa.float32(), 16)
    ref = KeyedVectors.load_word2vec_format(str(src))
    assert table.column("word").to_pylist() == ref.index_to_key
    got = table.column("vector").combine_chunks().flatten().to_numpy().reshape(-1, 16)
    np.testing.assert_array_equal(got, ref.vectors)
    r = invoke("convert", tmp_path / "v.parquet", "-o", tmp_path / "back.vec")
    assert r.exit_code == 0, r.stderr
    back = KeyedVectors.load_word2vec_format(str(tmp_path / "back.vec"))
    assert back.index_to_key == ref.index_to_key
    np.testing.assert_allclose(back.vectors, ref.vectors, rtol=1e-6)
    r = invoke("convert", tmp_path / "v.parquet", "-o", tmp_path / "v.vecdir")  # to the native format, exactly
    assert r.exit_code == 0, r.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "v.vecdir" / "vectors.npy"), ref.vectors)


def test_parquet_made_elsewhere_list_of_double_and_float16(tmp_path, invoke):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4))
    pq.write_table(pa.table({"word": ["甲", "乙", "丙", "丁", "戊"], "vector": pa.array(x.tolist()), "freq": [5, 4, 3, 2, 1]}),
                   tmp_path / "other.parquet")
    r = invoke("convert", tmp_path / "other.parquet", "--to", "jsonl")  # detected by name; extra columns ignored
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[1].startswith('{"word":"乙","vector":[')
    r = invoke("convert", tmp_path / "other.parquet", "--dtype", "float16", "-o", tmp_path / "h.parquet")
    assert r.exit_code == 0, r.stderr
    got = pq.read_table(tmp_path / "h.parquet").column("vector")
    assert got.type == pa.list_(pa.float16(), 4)
    np.testing.assert_array_equal(got.combine_chunks().flatten().to_numpy().reshape(5, 4), x.astype(np.float32).astype(np.float16))
    data = (tmp_path / "other.parquet").read_bytes()
    r = invoke("convert", "-", "--to", "word2vec", input=data)  # detected by its magic bytes on stdin
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[0] == "5 4"


@pytest.mark.parametrize("bad", ["nan", "null", "short"])
def test_bad_rows_are_named_and_skippable(tmp_path, invoke, bad):
    rows = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    rows[1] = {"nan": [float("nan"), 1.0], "null": None, "short": [1.0]}[bad]
    pq.write_table(pa.table({"word": ["a", "b", "c"], "vector": pa.array(rows, type=pa.list_(pa.float64()))}),
                   tmp_path / "bad.parquet")
    r = invoke("convert", tmp_path / "bad.parquet", "--to", "glove")
    assert r.exit_code == 65
    assert f"{tmp_path / 'bad.parquet'}:2:" in r.stderr and "'b'" in r.stderr
    r = invoke("convert", tmp_path / "bad.parquet", "--to", "glove", "--on-error", "skip")
    assert r.exit_code == 0, r.stderr
    assert [line.split()[0] for line in r.stdout.splitlines()] == ["a", "c"]


def test_not_parquet_and_missing_columns(tmp_path, invoke):
    (tmp_path / "x.parquet").write_bytes(b"PAR1 but not really")
    r = invoke("convert", tmp_path / "x.parquet", "--to", "glove")
    assert r.exit_code == 65 and "cannot read it as Parquet" in r.stderr
    pq.write_table(pa.table({"token": ["a"], "emb": [[1.0]]}), tmp_path / "y.parquet")
    r = invoke("convert", tmp_path / "y.parquet", "--to", "glove")
    assert r.exit_code == 65 and 'no "word" column' in r.stderr
