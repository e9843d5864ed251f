"""Exact top-k and analogies against brute force and gensim."""
import numpy as np
import pytest
from gensim.models import KeyedVectors

from vecpipe.core.search.topk import analogy, topk


def brute(q, x, k, metric):
    if metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        s = q @ x.T
    elif metric == "dot":
        s = q @ x.T
    else:
        s = -np.sqrt(((q[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    ids = np.lexsort((np.broadcast_to(np.arange(x.shape[0]), s.shape), -s), axis=1)[:, :k]
    return np.take_along_axis(s, ids, axis=1), ids


@pytest.mark.parametrize("metric", ["cosine", "dot", "euclidean"])
def test_topk_equals_brute_force_across_blocks(metric):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 24)).astype(np.float32)
    q = rng.standard_normal((70, 24)).astype(np.float32)
    s, i = topk(q, x, 15, metric=metric, index_block=500, query_block=16)
    rs, ri = brute(q, x, 15, metric)
    np.testing.assert_array_equal(i, ri)
    np.testing.assert_allclose(s, rs, rtol=1e-4, atol=1e-4)


def test_ties_break_by_row_and_k_larger_than_index():
    x = np.array([[1, 0], [1, 0], [0, 1], [1, 0], [-1, 0]], dtype=np.float32)
    s, i = topk(np.array([[1, 0]], dtype=np.float32), x, 4, index_block=2)
    assert i.tolist() == [[0, 1, 3, 2]]
    s, i = topk(np.array([[1, 0]], dtype=np.float32), x, 8)
    assert i[0, :5].tolist() == [0, 1, 3, 2, 4] and i[0, 5:].tolist() == [-1, -1, -1]
    assert np.isneginf(s[0, 5:]).all()


def test_exclude_and_min_score():
    x = np.eye(4, dtype=np.float32) + 0.1
    s, i = topk(x[:2], x, 2, exclude=[[0], [1]])
    assert 0 not in i[0] and 1 not in i[1]
    s, i = topk(x[:1], x, 4, min_score=0.5)
    assert i[0].tolist()[0] == 0 and (i[0][1:] == -1).all()


def test_memmap_index(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1000, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    np.testing.assert_array_equal(topk(x[:5], mm, 3, index_block=100)[1], topk(x[:5], x, 3)[1])


@pytest.mark.parametrize("method", ["add", "mul"])
def test_analogy_matches_gensim(method):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4000, 32)).astype(np.float32)
    words = [f"w{i}" for i in range(4000)]
    kv = KeyedVectors(32)
    kv.add_vectors(words, x)
    a, b, c = rng.integers(0, 4000, (3, 30))
    scores, ids = analogy(x, a, b, c, k=3, method=method, index_block=700, query_block=7)
    for j in range(30):
        pos, neg = [words[b[j]], words[c[j]]], [words[a[j]]]
        ref = kv.most_similar(positive=pos, negative=neg, topn=3) if method == "add" \
            else kv.most_similar_cosmul(positive=pos, negative=neg, topn=3)
        assert [words[t] for t in ids[j]] == [w for w, _ in ref]
        np.testing.assert_allclose(scores[j], [v for _, v in ref], atol=1e-4)


def test_analogy_restrict_vocab():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((500, 8)).astype(np.float32)
    _, ids = analogy(x, [1, 2], [3, 4], [5, 6], k=5, restrict=50)
    assert (ids < 50).all()
