"""Exact search on a GPU with torch (matmul + topk, fp16 on CUDA); the index
is copied to the device once and kept there (Index.on_device)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vecpipe.core.search.topk import topk

if TYPE_CHECKING:
    from vecpipe.core.search.index import Index
    from vecpipe.core.search.knn import KnnOptions

QUERY_BLOCK = 1024  # queries per torch call: a block of 4096 would need a 4x larger score matrix


def device_copy(vectors, device: str, metric: str):
    """The rows as one tensor on the device, fp16 on CUDA, normalised for
    cosine; copied in chunks so an mmap is never read whole into memory."""
    import torch

    chunks = []
    for start in range(0, vectors.shape[0], 1 << 18):
        t = torch.as_tensor(np.asarray(vectors[start : start + (1 << 18)], dtype=np.float32), device=device)
        if metric == "cosine":
            t = torch.nn.functional.normalize(t, dim=1)
        chunks.append(t.half() if str(device).startswith("cuda") else t)
    return torch.cat(chunks)


def search_on_device(index: Index, queries: np.ndarray, opts: KnnOptions, exclude=None):
    """(scores, rows) for a block of queries against the index kept on the
    device, QUERY_BLOCK queries at a time with their exclusions."""
    parts = [topk_torch(queries[s : s + QUERY_BLOCK], index.on_device(opts.device, opts.metric), opts.k,
                        metric=opts.metric, exclude=None if exclude is None else exclude[s : s + QUERY_BLOCK],
                        device=opts.device, min_score=opts.min_score, index_normalized=True)
             for s in range(0, len(queries), QUERY_BLOCK)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def topk_torch(queries, vectors, k, *, metric="cosine", exclude=None, device="cuda", min_score=None,
               dtype=None, block_rows=1 << 20, index_normalized=False):
    """The same search with torch matmul + topk (fp16 on CUDA). `vectors` may
    be a numpy array/mmap (copied to the device block by block) or a tensor
    already there (see Index.on_device); ties are not ordered by row here."""
    import torch

    if metric == "euclidean":
        return topk(queries, vectors, k, metric=metric, exclude=exclude, min_score=min_score)
    dtype = dtype or (torch.float16 if str(device).startswith("cuda") else torch.float32)
    q = torch.as_tensor(np.asarray(queries, dtype=np.float32), device=device)
    if metric == "cosine":
        q = torch.nn.functional.normalize(q, dim=1)
    q = q.to(dtype)
    best_s = best_i = None
    for start in range(0, vectors.shape[0], block_rows):
        part = vectors[start : start + block_rows]
        blk = part if isinstance(part, torch.Tensor) else torch.as_tensor(np.asarray(part, dtype=np.float32))
        blk = blk.to(device)
        if metric == "cosine" and not index_normalized:
            blk = torch.nn.functional.normalize(blk.float(), dim=1)
        # top-k on the scores in the compute dtype: an fp32 copy of a
        # (queries x 1M) block would double the bytes written and read
        s = q @ blk.to(dtype).T
        s.nan_to_num_(nan=float("-inf"), posinf=float("-inf"))  # NaN/Inf rows are never ranked (torch.topk puts NaN first)
        if exclude is not None:
            for r, rows in enumerate(exclude):
                for row in rows or ():
                    if start <= row < start + blk.shape[0]:
                        s[r, row - start] = float("-inf")
        vals, idx = torch.topk(s, min(k, s.shape[1]), dim=1)
        idx = idx + start
        if best_s is None:
            best_s, best_i = vals, idx
        else:
            vals, pos = torch.topk(torch.cat([best_s, vals], 1), min(k, best_s.shape[1] + vals.shape[1]), dim=1)
            best_i = torch.gather(torch.cat([best_i, idx], 1), 1, pos)
            best_s = vals
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    rows = np.full((len(queries), k), -1, dtype=np.int64)
    scores[:, : best_s.shape[1]] = best_s.float().cpu().numpy()
    rows[:, : best_i.shape[1]] = best_i.cpu().numpy()
    rows[np.isneginf(scores)] = -1
    if min_score is not None:
        rows[scores < min_score] = -1
        scores[scores < min_score] = -np.inf
    return scores, rows
