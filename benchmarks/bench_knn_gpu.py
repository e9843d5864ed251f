"""knn on a GPU: queries/s over a 1M x 768 index, fp16 and fp32, with
vecpipe's torch search (the path `vecpipe knn --device cuda` takes).

    python benchmarks/bench_knn_gpu.py [--rows 1000000] [--dim 768] [--queries 20000]

Reference seen on one H100 (plain torch matmul + topk): about 100k queries/s
at fp16, 24k at fp32 without TF32. Needs torch with CUDA and numpy only.
"""
from __future__ import annotations

import argparse
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--queries", type=int, default=20_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    import numpy as np
    import torch

    from vecpipe.core.search.gpu import topk_torch

    torch.backends.cuda.matmul.allow_tf32 = False
    rng = np.random.default_rng(0)
    index = rng.standard_normal((args.rows, args.dim), dtype=np.float32)
    queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    print(f"device {torch.cuda.get_device_name() if args.device.startswith('cuda') else args.device}; "
          f"index {args.rows} x {args.dim}, {args.queries} queries, k={args.k}")
    for dtype in (torch.float16, torch.float32):
        # the index is moved to the GPU once; queries in blocks of 4096
        dev_index = torch.as_tensor(index, device=args.device)
        topk_torch(queries[:256], dev_index, args.k, device=args.device, dtype=dtype)  # warm up
        torch.cuda.synchronize()
        t = time.perf_counter()
        for s in range(0, args.queries, 4096):
            topk_torch(queries[s : s + 4096], dev_index, args.k, device=args.device, dtype=dtype)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
        print(f"  {str(dtype).split('.')[-1]:8s} {args.queries / dt:10,.0f} queries/s")
        del dev_index
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
