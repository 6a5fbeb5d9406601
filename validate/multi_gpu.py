"""Multi-GPU measurements: collectives and tensor-parallel layer steps, one process per GPU.

``python3 -m validate.multi_gpu [--nproc N] [--quick] [--out DIR]`` starts N processes (default: every
visible GPU) with ``torch.distributed`` (NCCL on GPUs, gloo on CPU for the tests), each on its own device,
and writes ``multi_gpu.csv`` (columns :data:`COLUMNS`) plus ``multi_gpu_environment.json``:

- collectives (``validate.cases.multi_gpu``): each rank fills its buffer with values that identify it, the
  result is checked exactly (all-reduce: Σ ranks; all-gather: chunk i from rank i; reduce-scatter: the sum
  of this rank's chunk; all-to-all: chunk j from rank j addressed to this rank), then timed: warm-up,
  barrier, ``n`` back-to-back calls between two device syncs, the slowest rank's time, median of repeats;
  bus bandwidth in the nccl-tests convention (all-reduce 2(t−1)/t · bytes / time, the others (t−1)/t).
- tensor-parallel layers: a stack of Llama-3-8B-shaped decoder layers split over the ranks (heads and FFN
  columns divided, an all-reduce after the attention output and after the MLP, Megatron-style); a prefill
  and a decode step are checked against the unsplit layer computed on one rank, then timed.

Written for any number of GPUs; run and tested on CPU with gloo and two processes.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import time
from pathlib import Path

from validate.cases.multi_gpu import (COLLECTIVES, DECODE_SHAPES, LAYERS_IN_STACK, LLAMA3_8B, PREFILL_SHAPES,
                                      QUICK_SIZES_BYTES, SIZES_BYTES, TINY, LayerDims)

COLUMNS = ("case_id", "kind", "backend", "device", "n_ranks", "bytes", "batch", "seq", "context", "n_layers",
           "median_s", "p10_s", "p90_s", "n_reps", "bus_bytes_per_s", "max_abs_err")
BUS_FACTOR = {"all_reduce": lambda t: 2.0 * (t - 1) / t, "all_gather": lambda t: (t - 1) / t,
              "reduce_scatter": lambda t: (t - 1) / t, "all_to_all": lambda t: (t - 1) / t}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sync(torch, device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_collective(torch, dist, kind: str, n_bytes: int, device, dtype=None):
    """One checked call of ``kind`` on an ``n_bytes`` buffer per rank; returns (fn, max abs error)."""
    rank, t = dist.get_rank(), dist.get_world_size()
    dtype = dtype or torch.float32
    n = max(t, n_bytes // torch.tensor([], dtype=dtype).element_size() // t * t)
    if kind == "all_reduce":
        x = torch.full((n,), float(rank + 1), device=device, dtype=dtype)
        fn = lambda: dist.all_reduce(x)  # noqa: E731
        expect = lambda: torch.full_like(x, t * (t + 1) / 2.0)  # noqa: E731
        out = x
    elif kind == "all_gather":
        x = torch.full((n // t,), float(rank + 1), device=device, dtype=dtype)
        out = torch.empty(n, device=device, dtype=dtype)
        fn = lambda: dist.all_gather_into_tensor(out, x)  # noqa: E731
        expect = lambda: torch.arange(1, t + 1, device=device, dtype=dtype).repeat_interleave(n // t)  # noqa: E731
    elif kind == "reduce_scatter":
        x = (torch.arange(n, device=device, dtype=dtype) % 7) * (rank + 1)
        out = torch.empty(n // t, device=device, dtype=dtype)
        fn = lambda: _reduce_scatter(torch, dist, out, x)  # noqa: E731
        chunk = (torch.arange(n, device=device, dtype=dtype) % 7)[rank * (n // t):(rank + 1) * (n // t)]
        expect = lambda: chunk * (t * (t + 1) / 2.0)  # noqa: E731
    else:
        # rank r sends value r·t + j to rank j; rank j receives r·t + j from each r, in rank order
        x = (rank * t + torch.arange(t, device=device, dtype=dtype)).repeat_interleave(n // t)
        out = torch.empty(n, device=device, dtype=dtype)
        fn = lambda: dist.all_to_all_single(out, x)  # noqa: E731
        expect = lambda: (torch.arange(t, device=device, dtype=dtype) * t + rank).repeat_interleave(n // t)  # noqa: E731
    fn()
    _sync(torch, device)
    err = float((out - expect()).abs().max())
    if kind == "all_reduce":  # restore the inputs for timing
        x.fill_(float(rank + 1))
    return fn, err


def _reduce_scatter(torch, dist, out, x):
    if dist.get_backend() == "gloo":  # gloo has no reduce-scatter: all-reduce a copy and keep our chunk
        y = x.clone()
        dist.all_reduce(y)
        r, n = dist.get_rank(), out.numel()
        out.copy_(y[r * n:(r + 1) * n])
        return
    dist.reduce_scatter_tensor(out, x)


def time_calls(torch, dist, fn, device, n_reps: int, calls: int) -> list[float]:
    """Per-call seconds of ``calls`` back-to-back calls, ``n_reps`` times; each repeat the slowest rank's."""
    out = []
    for _ in range(n_reps):
        dist.barrier()
        _sync(torch, device)
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        _sync(torch, device)
        dt = torch.tensor([(time.perf_counter() - t0) / calls], dtype=torch.float64)
        dist.all_reduce(dt, op=dist.ReduceOp.MAX)  # the collective ends when the slowest rank does
        out.append(float(dt))
    return out


def _row(kind, backend, device, t, times, **extra) -> dict:
    q = statistics.quantiles(times, n=10) if len(times) > 1 else [times[0]] * 9
    return {"kind": kind, "backend": backend, "device": device, "n_ranks": t, "median_s": statistics.median(times),
            "p10_s": q[0], "p90_s": q[-1], "n_reps": len(times), **extra}


def collective_rows(torch, dist, device, sizes, n_reps) -> list[dict]:
    rows, t, backend = [], dist.get_world_size(), dist.get_backend()
    for kind in COLLECTIVES:
        for n_bytes in sizes:
            fn, err = run_collective(torch, dist, kind, n_bytes, device)
            calls = max(1, min(20, int(2e8 // max(n_bytes, 1))))  # ~0.2 GB moved per repeat, ≤ 20 calls
            for _ in range(2):
                fn()  # warm-up: NCCL sets up its channels on first use
            times = time_calls(torch, dist, fn, device, n_reps, calls)
            med = statistics.median(times)
            rows.append(_row(kind, backend, device.type, t, times, case_id=f"{kind}-{n_bytes}", bytes=n_bytes,
                             bus_bytes_per_s=BUS_FACTOR[kind](t) * n_bytes / med, max_abs_err=err))
    return rows


class TPLayer:
    """One decoder layer's shard on this rank: heads and FFN columns divided by the world size."""

    def __init__(self, torch, d: LayerDims, t: int, rank: int, device, dtype, seed: int):
        g = torch.Generator().manual_seed(seed)
        full = {name: torch.randn(shape, generator=g, dtype=torch.float32) / shape[1] ** 0.5 for name, shape in (
            ("wq", (d.n_q_heads * d.head_dim, d.hidden)), ("wk", (d.n_kv_heads * d.head_dim, d.hidden)),
            ("wv", (d.n_kv_heads * d.head_dim, d.hidden)), ("wo", (d.hidden, d.n_q_heads * d.head_dim)),
            ("wg", (d.ffn_hidden, d.hidden)), ("wu", (d.ffn_hidden, d.hidden)), ("wd", (d.hidden, d.ffn_hidden)))}
        self.d, self.t, self.torch = d, t, torch
        hq, hkv, f = d.n_q_heads // t, max(d.n_kv_heads // t, 1), d.ffn_hidden // t
        # KV heads split when there are at least as many as ranks, else each replicated (vLLM's rule)
        kv_rank = rank if d.n_kv_heads >= t else rank * d.n_kv_heads // t
        rows = lambda w, n, i: w[i * n:(i + 1) * n]  # noqa: E731 - column-parallel: output rows
        cols = lambda w, n, i: w[:, i * n:(i + 1) * n]  # noqa: E731 - row-parallel: input columns
        hd = d.head_dim
        self.w = {"wq": rows(full["wq"], hq * hd, rank), "wk": rows(full["wk"], hkv * hd, kv_rank),
                  "wv": rows(full["wv"], hkv * hd, kv_rank), "wo": cols(full["wo"], hq * hd, rank),
                  "wg": rows(full["wg"], f, rank), "wu": rows(full["wu"], f, rank), "wd": cols(full["wd"], f, rank)}
        self.w = {k: v.to(device=device, dtype=dtype).contiguous() for k, v in self.w.items()}
        self.full = {k: v.to(device=device, dtype=dtype) for k, v in full.items()}
        self.hq, self.hkv = hq, hkv

    def forward(self, x, w, hq, hkv, reduce, cache=None):
        """x [B, S, h] → [B, S, h]; ``cache`` (k, v) [B, hkv, C, d] for a decode step."""
        torch, d = self.torch, self.d
        F = torch.nn.functional
        b, s, _ = x.shape
        h = F.rms_norm(x, (d.hidden,))
        q = (h @ w["wq"].T).view(b, s, hq, d.head_dim).transpose(1, 2)
        k = (h @ w["wk"].T).view(b, s, hkv, d.head_dim).transpose(1, 2)
        v = (h @ w["wv"].T).view(b, s, hkv, d.head_dim).transpose(1, 2)
        if cache is not None:
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
        k, v = k.repeat_interleave(hq // hkv, 1), v.repeat_interleave(hq // hkv, 1)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=cache is None)
        x = x + reduce(o.transpose(1, 2).reshape(b, s, hq * d.head_dim) @ w["wo"].T)
        h = F.rms_norm(x, (d.hidden,))
        return x + reduce((F.silu(h @ w["wg"].T) * (h @ w["wu"].T)) @ w["wd"].T)


def _cache(torch, d: LayerDims, batch, context, seed, device, dtype):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, d.n_kv_heads, context, d.head_dim, generator=g).to(device, dtype) for _ in "kv")


def _shard_cache(cache, layer: TPLayer, rank: int):
    d, t = layer.d, layer.t
    first = rank * layer.hkv if d.n_kv_heads >= t else rank * d.n_kv_heads // t
    return tuple(c[:, first:first + layer.hkv].contiguous() for c in cache)


def layer_rows(torch, dist, device, dims: LayerDims, shapes, n_reps, dtype) -> list[dict]:
    """Prefill and decode steps of a tensor-parallel layer stack: checked against the unsplit layers, timed."""
    rank, t, backend = dist.get_rank(), dist.get_world_size(), dist.get_backend()
    layers = [TPLayer(torch, dims, t, rank, device, dtype, seed=100 + i) for i in range(LAYERS_IN_STACK)]

    def reduce(y):
        dist.all_reduce(y)
        return y
    rows = []
    for mode, (batch, n) in shapes:
        g = torch.Generator().manual_seed(7)
        x = torch.randn(batch, 1 if mode == "decode" else n, dims.hidden, generator=g).to(device, dtype)
        caches = [_cache(torch, dims, batch, n, 300 + i, device, dtype) if mode == "decode" else None
                  for i in range(LAYERS_IN_STACK)]
        mine = [None if c is None else _shard_cache(c, lay, rank) for c, lay in zip(caches, layers)]

        def step(split=True):
            y = x
            for lay, c_full, c_mine in zip(layers, caches, mine):
                y = (lay.forward(y, lay.w, lay.hq, lay.hkv, reduce, c_mine) if split else
                     lay.forward(y, lay.full, dims.n_q_heads, dims.n_kv_heads, lambda z: z, c_full))
            return y
        with torch.no_grad():
            got, ref = step(True), step(False)
            err = float((got.float() - ref.float()).abs().max() / ref.float().abs().max())
            for _ in range(2):
                step(True)
            times = time_calls(torch, dist, lambda: step(True), device, n_reps, 1)
        key = "seq" if mode == "prefill" else "context"
        rows.append(_row(f"tp_layers_{mode}", backend, device.type, t, times, batch=batch, **{key: n},
                         n_layers=LAYERS_IN_STACK, case_id=f"tp{t}-{mode}-{dims.model}-b{batch}-{key}{n}",
                         max_abs_err=err))
    return rows


def worker(rank: int, world: int, port: int, backend: str, cfg: dict, out_path: str | None):
    """One process: join the group, run every case, rank 0 writes the rows (as JSON lines)."""
    import torch
    import torch.distributed as dist
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    device = torch.device(f"cuda:{rank}") if backend == "nccl" else torch.device("cpu")
    if backend == "nccl":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        dims = TINY if cfg["tiny"] else LLAMA3_8B
        dtype = torch.bfloat16 if backend == "nccl" else torch.float32
        rows = collective_rows(torch, dist, device, cfg["sizes"], cfg["n_reps"])
        shapes = [("prefill", s) for s in cfg["prefill"]] + [("decode", s) for s in cfg["decode"]]
        rows += layer_rows(torch, dist, device, dims, shapes, cfg["n_reps"], dtype)
        if rank == 0 and out_path:
            Path(out_path).write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    finally:
        dist.destroy_process_group()


def run(nproc: int, backend: str, quick: bool = False, tiny: bool = False, n_reps: int = 10,
        sizes=None, prefill=None, decode=None) -> list[dict]:
    """Spawn ``nproc`` processes, one per GPU (or CPU processes with gloo), and return the rows."""
    import tempfile

    import torch.multiprocessing as mp
    cfg = {"sizes": list(sizes or (QUICK_SIZES_BYTES if quick else SIZES_BYTES)), "n_reps": n_reps, "tiny": tiny,
           "prefill": list(prefill or (PREFILL_SHAPES[:2] if quick else PREFILL_SHAPES)),
           "decode": list(decode or (DECODE_SHAPES[:2] if quick else DECODE_SHAPES))}
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "rows.jsonl")
        # Fresh processes: forking a parent whose threads hold locks (OpenMP, triton) can deadlock. On CPU a
        # fork server that has imported torch once forks the workers (one torch import instead of two).
        method = "spawn" if backend == "nccl" else "forkserver"
        if method == "forkserver":
            mp.set_forkserver_preload(["torch", "torch.distributed"])
        mp.start_processes(worker, args=(nproc, _free_port(), backend, cfg, out), nprocs=nproc, join=True,
                           start_method=method)
        return [json.loads(line) for line in Path(out).read_text().splitlines() if line]


def main(argv=None) -> int:
    import torch
    from hwspecs.atomic import write_all  # one atomic write of the CSV and its environment
    parser = argparse.ArgumentParser(prog="python3 -m validate.multi_gpu", description=__doc__.split("\n")[0])
    parser.add_argument("--nproc", type=int, default=None, help="processes (default: visible GPUs)")
    parser.add_argument("--backend", choices=("nccl", "gloo"), default=None)
    parser.add_argument("--quick", action="store_true", help="3 sizes, 2 prefill and 2 decode shapes")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--out", default=None, help="output folder (default validate/measurements/multi_gpu)")
    a = parser.parse_args(argv)
    gpus = torch.cuda.device_count()
    backend = a.backend or ("nccl" if gpus >= 2 else "gloo")
    nproc = a.nproc or (gpus if backend == "nccl" else 2)
    if backend == "nccl" and nproc > gpus:
        parser.error(f"--nproc {nproc} needs {nproc} GPUs, {gpus} visible")
    rows = run(nproc, backend, quick=a.quick, tiny=backend == "gloo", n_reps=a.reps)
    folder = Path(a.out or Path(__file__).parent / "measurements" / "multi_gpu")
    folder.mkdir(parents=True, exist_ok=True)
    env = {"backend": backend, "n_ranks": nproc, "torch": torch.__version__,
           "gpu": torch.cuda.get_device_name(0) if gpus else "cpu",
           "nccl": ".".join(map(str, torch.cuda.nccl.version())) if backend == "nccl" else None,
           "nvls": os.environ.get("NCCL_NVLS_ENABLE")}
    texts = {folder / "multi_gpu.csv": _csv(rows), folder / "multi_gpu_environment.json": json.dumps(env, indent=1)}
    write_all([(path, lambda fh, text=text: fh.write(text), False) for path, text in texts.items()])
    print(f"wrote {len(rows)} rows to {folder / 'multi_gpu.csv'}")
    return 0


def _csv(rows) -> str:
    import csv
    import io
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS)
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in COLUMNS})
    return buf.getvalue()


if __name__ == "__main__":
    raise SystemExit(main())
