"""Kernel shape sweeps on the attached GPU: every hwperf Triton kernel next to its vendor reference.

Entry point: :func:`run_all` (used by ``hwperf validate`` and ``python3 -m validate``). It writes,
into ``out_dir`` (default ``validate/measurements/<hardware_id>/``):

- ``kernels.csv``  one row per (kernel, impl, shape, graph) case, columns :data:`KERNEL_COLUMNS`;
- ``failures.csv`` cases that failed, mismatched the vendor result, or were skipped for time;
- ``layers.csv``   whole Llama decoder-layer timings (:mod:`validate.layers`);
- ``power.csv``, ``power_trace.csv`` sustained power runs (:mod:`validate.power`);
- ``environment.json`` GPU, driver, torch/triton/CUDA versions, git sha, and how it was measured.

Kernels and shapes (shape columns are named like the keyword arguments of
``simulator.predict_kernel(hardware, kernel, impl=..., **shape)``):

=================  ==========================================================  ==================
kernel             vendor reference                                            shape columns
=================  ==========================================================  ==================
gemm               ``torch.matmul(a, w.t())`` (cuBLAS); fp8: ``torch._scaled_mm``  m, n, k, dtype
attention_prefill  ``F.scaled_dot_product_attention`` (GQA via enable_gqa)     batch, seq, n_q_heads,
                                                                                n_kv_heads, head_dim,
                                                                                causal, dtype
attention_decode   SDPA with one query token over a contiguous cache           batch, context,
                                                                                n_q_heads, n_kv_heads,
                                                                                head_dim, dtype (+paged)
copy               ``dst.copy_(src)`` device→device                            bytes
h2d, d2h           ``copy_`` host↔device, pinned and pageable host memory      bytes, pinned
kv_gather          ``torch.index_select`` of KV blocks                         bytes (payload)
kv_scatter         ``Tensor.index_copy_`` of KV blocks                         bytes (payload)
=================  ==========================================================  ==================

Counting: ``flops`` and ``hbm_bytes`` come from the kernels' own count functions
(``kernels.<name>.flops`` / ``hbm_bytes``), the same for the vendor and the Triton row of a shape;
they are left empty if that module cannot be imported. Byte movers count here, once:
copy and KV gather/scatter move ``2 × bytes`` through HBM (read + write), h2d/d2h ``bytes`` over the
host link. ``achieved_flops_per_s = flops / median_s``, ``achieved_bytes_per_s = hbm_bytes /
median_s``. Weights are stored like ``nn.Linear`` ([n, k]) and multiplied as ``w.t()``.

Timing method: :mod:`validate.timing` (CUDA events, warm-up, fixed time budget per case, inputs
rotated so L2 is not measured; kernels faster than :data:`GRAPH_BELOW_S` get a second row timed
inside a CUDA graph, ``graph=True``, case_id suffix ``-graph``). A few cases are timed twice, once
early and once at the end; their relative spread is in ``repeat_spread_frac``.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import json
import math
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import hwspecs
from validate.env import Environment, HardwareMismatchError, NoGPUError, Nvml  # noqa: F401

KERNEL_COLUMNS: tuple[str, ...] = (
    "case_id", "kernel", "impl", "dtype",
    "m", "n", "k", "batch", "seq", "context", "n_q_heads", "n_kv_heads", "head_dim",
    "causal", "paged", "pinned", "bytes",
    "median_s", "p10_s", "p90_s", "n_reps",
    "flops", "hbm_bytes", "achieved_flops_per_s", "achieved_bytes_per_s",
    "sm_clock_hz", "power_w", "energy_j", "graph", "gpu_name", "hardware_id",
    "repeat_spread_frac",
)
FAILURE_COLUMNS: tuple[str, ...] = ("case_id", "kernel", "impl", "stage", "error")
KERNELS: tuple[str, ...] = (
    "gemm", "attention_prefill", "attention_decode", "copy", "h2d", "d2h", "kv_gather", "kv_scatter",
)
DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "measurements"

# Kernels whose eager time is below this also get a CUDA-graph row: launch gaps dominate there
# (Triton's Python launch path alone costs ~50-100 µs on the H100 machine).
GRAPH_BELOW_S = 300e-6
CHECK_REL_TOL = 2e-2  # Triton vs vendor on the same bf16/fp16/fp8 inputs, ‖Δ‖/‖ref‖
MAX_SET_BYTES = 10e9  # skip shapes whose one input set exceeds this (keeps H100 80 GB safe)
DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp8": "float8_e4m3fn"}
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp8": 1}


# --------------------------------------------------------------------------------------------- CSV

def _cell(value: Any) -> str:
    """CSV text of one value: '' for None, True/False for bools, full-precision repr for floats."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def write_csv_atomic(path: Path | str, rows: Iterable[dict], columns: Sequence[str]) -> Path:
    """Write ``rows`` to ``path`` with exactly ``columns``, atomically (temp file + os.replace).

    Missing keys are written empty; an unknown key raises ``ValueError`` naming it (and leaves any
    existing file untouched), so a typo in a column name cannot silently add or drop data.
    """
    allowed = set(columns)

    def write(fh):
        writer = csv.writer(fh)
        writer.writerow(columns)
        for i, row in enumerate(rows):
            unknown = set(row) - allowed
            if unknown:
                raise ValueError(
                    f"row {i} of {Path(path).name} has unknown column(s) {sorted(unknown)}; "
                    f"allowed: {list(columns)}"
                )
            writer.writerow([_cell(row.get(c)) for c in columns])

    return hwspecs.write_atomic(path, write)


def write_json_atomic(path: Path | str, obj: Any) -> Path:
    def write(fh):
        json.dump(obj, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")

    return hwspecs.write_atomic(path, write)


# ------------------------------------------------------------------------------------ case model

@dataclasses.dataclass
class Variant:
    """One implementation of a group's work: ``make(input_set)`` returns a zero-argument closure."""

    impl: str  # vendor | triton
    make: Callable[[Any], Callable[[], Any]]
    module: str | None = None  # kernels.<module> that must import for this variant to run
    graph_ok: bool = True


@dataclasses.dataclass
class Group:
    """One shape of one kernel, with the variants that compute it on shared rotating input sets."""

    kernel: str
    label: str  # shape part of the case id, e.g. "m4096-n4096-k4096"
    dtype: str | None
    shape: dict  # shape columns (m, n, k / batch, seq, ... / bytes, pinned, paged)
    set_bytes: int  # device bytes one input set (inputs + outputs) occupies, for L2 rotation
    make_set: Callable[[], Any]
    variants: list[Variant]
    counts: Callable[[], tuple[int | None, int | None]]  # (flops, hbm_bytes)
    # check(input_set, closure) -> relative error against the vendor/torch result, for triton
    check: Callable[[Any, Callable[[], Any]], float] | None = None
    rotate: bool = True
    extra_id: str = ""  # e.g. "-paged"

    def case_id(self, impl: str, graph: bool = False) -> str:
        parts = [self.kernel, impl] + ([self.dtype] if self.dtype else []) + [self.label]
        return "-".join(parts) + self.extra_id + ("-graph" if graph else "")


def _rel_err(out, ref) -> float:
    out, ref = out.float(), ref.float()
    denom = ref.norm().item()
    diff = (out - ref).norm().item()
    return diff / denom if denom > 0 else diff


class _Kernels:
    """Lazy import of ``kernels.<name>``; a failure is remembered and reported once."""

    def __init__(self):
        self.modules: dict[str, Any] = {}
        self.errors: dict[str, str] = {}

    def get(self, name: str):
        if name in self.modules:
            return self.modules[name]
        if name in self.errors:
            return None
        try:
            self.modules[name] = importlib.import_module(f"kernels.{name}")
        except Exception as exc:  # any import-time failure: syntax, missing triton, driver
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            return None
        return self.modules[name]

    def count(self, name: str, fn: str, *args):
        mod = self.get(name)
        if mod is None or not hasattr(mod, fn):
            return None
        return int(getattr(mod, fn)(*args))


# ------------------------------------------------------------------------------------ shape sets

LLAMA_LINEARS: dict[str, dict[str, tuple[int, int]]] = {
    # name -> (n = out features, k = in features), nn.Linear weight [n, k]
    "llama-3-8b": {
        "qkv": (4096 + 2 * 8 * 128, 4096),
        "o": (4096, 4096),
        "gate_up": (2 * 14336, 4096),
        "down": (4096, 14336),
    },
    "llama-3-70b": {
        "qkv": (8192 + 2 * 8 * 128, 8192),
        "o": (8192, 8192),
        "gate_up": (2 * 28672, 8192),
        "down": (8192, 28672),
    },
}
GEMM_M_VENDOR = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
# Triton autotunes per (M, N, K) (~1-2 s each), so it gets a thinner M grid to fit the time budget.
GEMM_M_TRITON = (1, 8, 32, 128, 512, 2048, 8192)
GEMM_SQUARE = (256, 512, 1024, 2048, 4096, 8192)
ATTN_LAYOUTS = ((32, 8, 128), (64, 8, 128), (32, 32, 128), (16, 16, 64))  # (Hq, Hkv, D)
PREFILL_SEQS = (512, 1024, 2048, 4096, 8192, 16384)
PREFILL_TOKENS = 16384  # batch = max(1, PREFILL_TOKENS // seq): similar work per case
DECODE_BATCHES = (1, 4, 16, 64, 256)
DECODE_CONTEXTS = (128, 512, 2048, 8192, 32768)
DECODE_LAYOUTS = ((32, 8, 128), (64, 8, 128), (32, 32, 128))
DECODE_MAX_KV_BYTES = 9e9  # K+V of one input set; larger combinations are skipped
PAGE_TOKENS = 16  # paged-cache block size (vLLM default)
COPY_BYTES = tuple(2**20 * 4**i for i in range(7))  # 1 MiB … 4 GiB
HOST_BYTES = tuple(2**20 * 4**i for i in range(6))  # 1 MiB … 1 GiB
KV_BLOCK_SHAPE = (PAGE_TOKENS, 8, 128)  # one KV block: 16 tokens × 8 kv heads × 128 dims, bf16
KV_CACHE_BLOCKS = 65536  # 65536 × 32 KiB = 2 GiB cache
KV_GATHER_BLOCKS = (16, 128, 1024, 8192, 32768)


SECTIONS: tuple[str, ...] = (
    "gemm", "attention_prefill", "attention_decode", "copy", "host", "kv", "gemm_fp8",
    "gemm_triton", "attention_prefill_triton",
)


def only_impl(groups: list[Group], impl: str) -> list[Group]:
    """The groups that have an ``impl`` variant, reduced to that variant alone."""
    out = []
    for g in groups:
        kept = [v for v in g.variants if v.impl == impl]
        if kept:
            out.append(dataclasses.replace(g, variants=kept))
    return out


def interleave(groups: list[Group], key: str, values: Sequence[int]) -> list[Group]:
    """Order groups so a prefix covers the ``key`` range evenly (bisection order of ``values``).

    Groups whose ``key`` is not among ``values`` (e.g. square GEMMs) keep their place in front.
    """
    order = _bisection_order(sorted(values))
    rank = {v: i for i, v in enumerate(order)}
    return sorted(groups, key=lambda g: rank.get(g.shape.get(key), -1))  # stable


def _bisection_order(values: list[int]) -> list[int]:
    """Ends first, then midpoints: [1, 8, 32, 128, 512] → [1, 512, 32, 8, 128]."""
    if len(values) <= 2:
        return list(values)
    out, queue = [values[0], values[-1]], [(0, len(values) - 1)]
    while queue:
        lo, hi = queue.pop(0)
        if hi - lo < 2:
            continue
        mid = (lo + hi) // 2
        out.append(values[mid])
        queue += [(lo, mid), (mid, hi)]
    return out


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """What to sweep and how long to spend (seconds, per case and per section)."""

    quick: bool = False
    case_budget_s: float = 0.05
    section_budget_s: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def full(cls) -> "SweepConfig":
        return cls(
            quick=False,
            case_budget_s=0.04,
            section_budget_s={
                "gemm": 40.0, "attention_prefill": 20.0, "attention_decode": 130.0, "copy": 15.0,
                "host": 25.0, "kv": 15.0, "gemm_fp8": 25.0, "gemm_triton": 90.0,
                "attention_prefill_triton": 90.0, "layers": 45.0,
            },
        )

    @classmethod
    def quick_mode(cls) -> "SweepConfig":
        return cls(
            quick=True,
            case_budget_s=0.01,
            section_budget_s={k: 30.0 for k in SECTIONS + ("layers",)},
        )


def _torch_dtype(torch, name: str):
    return getattr(torch, DTYPE_NAMES[name])


def gemm_groups(torch, kern: _Kernels, cfg: SweepConfig, fp8: bool = False) -> list[Group]:
    """bf16 square and Llama-layer GEMMs (vendor on the full M grid, Triton on a thinner one)."""
    shapes: list[tuple[int, int, int, bool]] = []  # (m, n, k, with_triton)
    if fp8:
        shapes = [(2048, 2048, 2048, True), (4096, 4096, 4096, True), (8192, 8192, 8192, True)]
        n, k = LLAMA_LINEARS["llama-3-70b"]["gate_up"]
        shapes += [(16, n, k, True), (4096, n, k, True)]
        n, k = LLAMA_LINEARS["llama-3-8b"]["down"]
        shapes += [(128, n, k, True)]
        if cfg.quick:
            shapes = [(1024, 1024, 1024, True)]
    elif cfg.quick:
        n, k = LLAMA_LINEARS["llama-3-8b"]["qkv"]
        shapes = [(1024, 1024, 1024, True), (1, n, k, True), (128, n, k, True)]
    else:
        shapes = [(s, s, s, True) for s in GEMM_SQUARE]
        for model in LLAMA_LINEARS.values():
            for n, k in model.values():
                shapes += [(m, n, k, m in GEMM_M_TRITON) for m in GEMM_M_VENDOR]
    dtype = "fp8" if fp8 else "bf16"
    unique: dict[tuple[int, int, int], bool] = {}  # square 4096/8192 recur as Llama o-proj shapes
    for m, n, k, with_triton in shapes:
        unique[(m, n, k)] = unique.get((m, n, k), False) or with_triton
    return [_gemm_group(torch, kern, m, n, k, dtype, t) for (m, n, k), t in unique.items()]


def _gemm_group(torch, kern, m, n, k, dtype, with_triton) -> Group:
    in_b = DTYPE_BYTES[dtype]
    out_b = 2
    tdt = _torch_dtype(torch, dtype)

    def make_set():
        a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)  # nn.Linear weight layout
        if dtype == "fp8":
            a, w = a.to(tdt), w.to(tdt)
        return a, w.t()  # b = w.t(): [k, n], column-major

    if dtype == "fp8":
        one = torch.ones((), device="cuda", dtype=torch.float32) if torch.cuda.is_available() else None

        def vendor(s):
            a, b = s
            return lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    else:
        def vendor(s):
            a, b = s
            return lambda: torch.matmul(a, b)

    def triton_make(s):
        a, b = s
        mm = kern.get("gemm").matmul
        return lambda: mm(a, b)

    def check(s, fn):
        a, b = s
        if dtype == "fp8":
            ref = a.float() @ b.float()
        else:
            ref = torch.matmul(a, b)
        return _rel_err(fn(), ref)

    variants = [Variant("vendor", vendor)]
    if with_triton:
        variants.append(Variant("triton", triton_make, module="gemm"))
    return Group(
        kernel="gemm",
        label=f"m{m}-n{n}-k{k}",
        dtype=dtype,
        shape={"m": m, "n": n, "k": k},
        set_bytes=(m * k + k * n) * in_b + m * n * out_b,
        make_set=make_set,
        variants=variants,
        counts=lambda: (kern.count("gemm", "flops", m, n, k),
                        kern.count("gemm", "hbm_bytes", m, n, k, in_b, out_b)),
        check=check,
    )


def _sdpa(torch):
    """SDPA with native GQA where torch has it (>= 2.5), else expand KV heads (outside timing)."""
    import inspect

    F = torch.nn.functional
    try:
        native = "enable_gqa" in inspect.signature(F.scaled_dot_product_attention).parameters
    except (TypeError, ValueError):  # builtins without a signature: probe the docstring
        native = "enable_gqa" in (F.scaled_dot_product_attention.__doc__ or "")
    return F.scaled_dot_product_attention, native


def prefill_groups(torch, kern: _Kernels, cfg: SweepConfig) -> list[Group]:
    cases = []
    if cfg.quick:
        cases = [(1024, (32, 8, 128), True)]
    else:
        for hq, hkv, d in ATTN_LAYOUTS:
            for seq in PREFILL_SEQS:
                for causal in (True, False):
                    cases.append((seq, (hq, hkv, d), causal))
    sdpa, native_gqa = _sdpa(torch)
    groups = []
    for seq, (hq, hkv, d), causal in cases:
        batch = max(1, PREFILL_TOKENS // seq) if not cfg.quick else 2
        groups.append(_prefill_group(torch, kern, sdpa, native_gqa, batch, seq, hq, hkv, d, causal))
    return groups


def _prefill_group(torch, kern, sdpa, native_gqa, batch, seq, hq, hkv, d, causal) -> Group:
    dt = torch.bfloat16

    def make_set():
        q = torch.randn(batch, hq, seq, d, device="cuda", dtype=dt)
        k = torch.randn(batch, hkv, seq, d, device="cuda", dtype=dt)
        v = torch.randn(batch, hkv, seq, d, device="cuda", dtype=dt)
        return q, k, v

    def vendor(s):
        q, k, v = s
        if native_gqa:
            return lambda: sdpa(q, k, v, is_causal=causal, enable_gqa=hq != hkv)
        ke = k.repeat_interleave(hq // hkv, dim=1)  # expanded outside the timed region
        ve = v.repeat_interleave(hq // hkv, dim=1)
        return lambda: sdpa(q, ke, ve, is_causal=causal)

    def triton_make(s):
        q, k, v = s
        attn = kern.get("attention_prefill").attention
        return lambda: attn(q, k, v, causal=causal)

    def check(s, fn):
        return _rel_err(fn(), vendor(s)())

    tokens = batch * seq
    return Group(
        kernel="attention_prefill",
        label=f"b{batch}-s{seq}-hq{hq}-hkv{hkv}-d{d}-{'causal' if causal else 'full'}",
        dtype="bf16",
        shape={"batch": batch, "seq": seq, "n_q_heads": hq, "n_kv_heads": hkv, "head_dim": d,
               "causal": causal},
        set_bytes=(2 * hq + 2 * hkv) * tokens * d * 2,
        make_set=make_set,
        variants=[Variant("vendor", vendor), Variant("triton", triton_make, module="attention_prefill")],
        counts=lambda: (
            kern.count("attention_prefill", "flops", batch, seq, hq, d, causal),
            kern.count("attention_prefill", "hbm_bytes", batch, seq, hq, hkv, d, 2),
        ),
        check=check,
    )


def decode_groups(torch, kern: _Kernels, cfg: SweepConfig) -> list[Group]:
    cases = []
    if cfg.quick:
        cases = [(1, 2048, (32, 8, 128)), (16, 2048, (32, 8, 128))]
    else:
        for hq, hkv, d in DECODE_LAYOUTS:
            for batch in DECODE_BATCHES:
                for context in DECODE_CONTEXTS:
                    if 2 * batch * hkv * context * d * 2 <= DECODE_MAX_KV_BYTES:
                        cases.append((batch, context, (hq, hkv, d)))
    sdpa, native_gqa = _sdpa(torch)
    groups = []
    for batch, context, (hq, hkv, d) in cases:
        groups.append(_decode_group(torch, kern, sdpa, native_gqa, batch, context, hq, hkv, d, False))
        groups.append(_decode_group(torch, kern, sdpa, native_gqa, batch, context, hq, hkv, d, True))
    return groups


def _decode_group(torch, kern, sdpa, native_gqa, batch, context, hq, hkv, d, paged) -> Group:
    dt = torch.bfloat16
    n_pages = batch * math.ceil(context / PAGE_TOKENS)

    def make_set():
        q = torch.randn(batch, hq, d, device="cuda", dtype=dt)
        lens = torch.full((batch,), context, device="cuda", dtype=torch.int32)
        if not paged:
            k = torch.randn(batch, hkv, context, d, device="cuda", dtype=dt)
            v = torch.randn(batch, hkv, context, d, device="cuda", dtype=dt)
            return q, k, v, lens, None
        k = torch.randn(n_pages, PAGE_TOKENS, hkv, d, device="cuda", dtype=dt)
        v = torch.randn(n_pages, PAGE_TOKENS, hkv, d, device="cuda", dtype=dt)
        # Scattered physical pages, as a serving engine's allocator leaves them.
        table = torch.randperm(n_pages, device="cuda").to(torch.int32).view(batch, -1)
        return q, k, v, lens, table

    def vendor(s):
        q, k, v, _, _ = s
        q4 = q.unsqueeze(2)  # [B, Hq, 1, D]
        if native_gqa:
            return lambda: sdpa(q4, k, v, is_causal=False, enable_gqa=hq != hkv)
        ke = k.repeat_interleave(hq // hkv, dim=1)
        ve = v.repeat_interleave(hq // hkv, dim=1)
        return lambda: sdpa(q4, ke, ve, is_causal=False)

    def triton_make(s):
        q, k, v, lens, table = s
        fn = kern.get("attention_decode").decode_attention
        return lambda: fn(q, k, v, lens, block_table=table)

    def check(s, fn):
        q, k, v, lens, table = s
        if table is None:
            ref = vendor(s)().squeeze(2)
        else:  # gather the pages back into a contiguous cache for SDPA
            idx = table.long()
            kc = k[idx].flatten(1, 2)[:, :context].transpose(1, 2)  # [B, Hkv, ctx, D]
            vc = v[idx].flatten(1, 2)[:, :context].transpose(1, 2)
            ref = vendor((q, kc.contiguous(), vc.contiguous(), lens, None))().squeeze(2)
        return _rel_err(fn(), ref)

    variants = [Variant("triton", triton_make, module="attention_decode")]
    if not paged:
        variants.insert(0, Variant("vendor", vendor))
    return Group(
        kernel="attention_decode",
        label=f"b{batch}-ctx{context}-hq{hq}-hkv{hkv}-d{d}",
        dtype="bf16",
        shape={"batch": batch, "context": context, "n_q_heads": hq, "n_kv_heads": hkv,
               "head_dim": d, "paged": paged},
        set_bytes=2 * batch * hkv * context * d * 2 + 2 * batch * hq * d * 2,
        make_set=make_set,
        variants=variants,
        counts=lambda: (
            kern.count("attention_decode", "flops", batch, context, hq, d),
            kern.count("attention_decode", "hbm_bytes", batch, context, hq, hkv, d, 2),
        ),
        check=check,
        extra_id="-paged" if paged else "",
    )


def copy_groups(torch, kern: _Kernels, cfg: SweepConfig) -> list[Group]:
    sizes = (64 * 2**20,) if cfg.quick else COPY_BYTES
    groups = []
    for nbytes in sizes:
        def make_set(nbytes=nbytes):
            src = torch.randn(nbytes // 2, device="cuda", dtype=torch.bfloat16)
            return src, torch.empty_like(src)

        def vendor(s):
            src, dst = s
            return lambda: dst.copy_(src)

        def triton_make(s):
            src, dst = s
            fn = kern.get("kv_copy").stream_copy
            return lambda: fn(src, dst)

        def check(s, fn):
            src, dst = s
            dst.fill_(float("nan"))  # poison: every element must be written
            fn()
            return 0.0 if torch.equal(dst, src) else float("inf")

        groups.append(Group(
            kernel="copy", label=f"bytes{nbytes}", dtype=None, shape={"bytes": nbytes},
            set_bytes=2 * nbytes, make_set=make_set,
            variants=[Variant("vendor", vendor), Variant("triton", triton_make, module="kv_copy")],
            counts=lambda nbytes=nbytes: (None, 2 * nbytes), check=check,
        ))
    return groups


def host_groups(torch, kern: _Kernels, cfg: SweepConfig) -> list[Group]:
    """Host↔device copies; one variant (vendor), pinned and pageable host buffers."""
    sizes = (64 * 2**20,) if cfg.quick else HOST_BYTES
    groups = []
    for direction in ("h2d", "d2h"):
        for pinned in (True, False):
            for nbytes in sizes:
                def make_set(nbytes=nbytes, pinned=pinned):
                    dev = torch.randn(nbytes // 2, device="cuda", dtype=torch.bfloat16)
                    host = torch.empty(nbytes // 2, dtype=torch.bfloat16, pin_memory=pinned)
                    host.copy_(dev)  # touch every page (a pageable buffer is lazily mapped)
                    return host, dev

                def vendor(s, direction=direction, pinned=pinned):
                    host, dev = s
                    if direction == "h2d":
                        return lambda: dev.copy_(host, non_blocking=pinned)
                    return lambda: host.copy_(dev, non_blocking=pinned)

                groups.append(Group(
                    kernel=direction, label=f"{'pinned' if pinned else 'pageable'}-bytes{nbytes}",
                    dtype=None, shape={"bytes": nbytes, "pinned": pinned},
                    set_bytes=nbytes, make_set=make_set,
                    variants=[Variant("vendor", vendor, graph_ok=False)],
                    counts=lambda nbytes=nbytes: (None, nbytes), rotate=False,
                ))
    return groups


def kv_groups(torch, kern: _Kernels, cfg: SweepConfig) -> list[Group]:
    """Gather/scatter of scattered KV blocks out of / into one large paged cache."""
    counts = (1024,) if cfg.quick else KV_GATHER_BLOCKS
    total_blocks = 8192 if cfg.quick else KV_CACHE_BLOCKS
    cache_holder: dict[str, Any] = {}
    block_elems = math.prod(KV_BLOCK_SHAPE)

    def cache():
        if "cache" not in cache_holder:
            cache_holder["cache"] = torch.randn(total_blocks, *KV_BLOCK_SHAPE, device="cuda",
                                                dtype=torch.bfloat16)
        return cache_holder["cache"]

    groups = []
    for n_blocks in counts:
        payload = n_blocks * block_elems * 2

        def make_gather(n_blocks=n_blocks):
            ids = torch.randperm(total_blocks, device="cuda")[:n_blocks].to(torch.int32)
            out = torch.empty(n_blocks, *KV_BLOCK_SHAPE, device="cuda", dtype=torch.bfloat16)
            return cache(), ids, out

        def gather_vendor(s):
            c, ids, out = s
            return lambda: torch.index_select(c, 0, ids, out=out)

        def gather_triton(s):
            c, ids, out = s
            fn = kern.get("kv_copy").gather_blocks
            return lambda: fn(c, ids, out=out)

        def gather_check(s, fn):
            c, ids, out = s
            out.fill_(float("nan"))
            res = fn()
            res = out if res is None else res
            return 0.0 if torch.equal(res, c[ids.long()]) else float("inf")

        groups.append(Group(
            kernel="kv_gather", label=f"blocks{n_blocks}-bytes{payload}", dtype=None,
            shape={"bytes": payload}, set_bytes=2 * payload, make_set=make_gather,
            variants=[Variant("vendor", gather_vendor),
                      Variant("triton", gather_triton, module="kv_copy")],
            counts=lambda payload=payload: (None, 2 * payload), check=gather_check,
        ))

        def make_scatter(n_blocks=n_blocks):
            ids = torch.randperm(total_blocks, device="cuda")[:n_blocks].to(torch.int32)
            src = torch.randn(n_blocks, *KV_BLOCK_SHAPE, device="cuda", dtype=torch.bfloat16)
            return src, cache(), ids

        def scatter_vendor(s):
            src, c, ids = s
            ids64 = ids.long()  # index_copy_ wants int64; converted outside the timed region
            return lambda: c.index_copy_(0, ids64, src)

        def scatter_triton(s):
            src, c, ids = s
            fn = kern.get("kv_copy").scatter_blocks
            return lambda: fn(src, c, ids)

        def scatter_check(s, fn):
            src, c, ids = s
            c[ids.long()] = float("nan")
            fn()
            return 0.0 if torch.equal(c[ids.long()], src) else float("inf")

        groups.append(Group(
            kernel="kv_scatter", label=f"blocks{n_blocks}-bytes{payload}", dtype=None,
            shape={"bytes": payload}, set_bytes=2 * payload, make_set=make_scatter,
            variants=[Variant("vendor", scatter_vendor),
                      Variant("triton", scatter_triton, module="kv_copy")],
            counts=lambda payload=payload: (None, 2 * payload), check=scatter_check,
        ))
    return groups


# ---------------------------------------------------------------------------------------- runner

class Runner:
    """Runs groups, collects kernel rows and failure rows, keeps the per-section time budgets."""

    def __init__(self, torch, env: Environment, nvml: Nvml, cfg: SweepConfig, kern: _Kernels):
        self.torch, self.env, self.nvml, self.cfg, self.kern = torch, env, nvml, cfg, kern
        self.rows: list[dict] = []
        self.failures: list[dict] = []
        self.section_s: dict[str, float] = {}
        self._import_reported: set[str] = set()

    def fail(self, case_id, kernel, impl, stage, error):
        self.failures.append({"case_id": case_id, "kernel": kernel, "impl": impl, "stage": stage,
                              "error": " ".join(str(error).split())[:600]})

    def _row(self, group: Group, impl: str, timing, flops, hbm, graph: bool) -> dict:
        row = {
            "case_id": group.case_id(impl, graph), "kernel": group.kernel, "impl": impl,
            "dtype": group.dtype, **group.shape,
            "median_s": timing.median_s, "p10_s": timing.p10_s, "p90_s": timing.p90_s,
            "n_reps": timing.n_reps, "flops": flops, "hbm_bytes": hbm,
            "achieved_flops_per_s": None if flops is None else flops / timing.median_s,
            "achieved_bytes_per_s": None if hbm is None else hbm / timing.median_s,
            "sm_clock_hz": timing.sm_clock_hz, "power_w": timing.power_w,
            "energy_j": timing.energy_j, "graph": graph,
            "gpu_name": self.env.gpu_name, "hardware_id": self.env.hardware_id,
        }
        if group.kernel == "attention_decode" and "paged" not in group.shape:
            row["paged"] = False
        return row

    def run_group(self, group: Group, only_impl: str | None = None, graph: bool = True,
                  check: bool = True) -> list[dict]:
        """Time every variant of ``group``; returns (and stores) the rows it produced."""
        from validate.timing import bench, bench_graph, n_rotation_sets

        torch = self.torch
        out_rows: list[dict] = []
        if group.set_bytes > MAX_SET_BYTES:
            self.fail(group.case_id("*"), group.kernel, "*", "skipped",
                      f"input set {group.set_bytes} bytes > MAX_SET_BYTES {MAX_SET_BYTES:.0f}")
            return out_rows
        variants = [v for v in group.variants if only_impl in (None, v.impl)]
        runnable = []
        for v in variants:
            if v.module and self.kern.get(v.module) is None:
                if (v.module, group.kernel) not in self._import_reported:
                    self._import_reported.add((v.module, group.kernel))
                    self.fail(f"{group.kernel}-{v.impl}-*", group.kernel, v.impl, "import",
                              f"kernels.{v.module}: {self.kern.errors[v.module]}")
                continue
            runnable.append(v)
        if not runnable:
            return out_rows
        sets = []
        try:
            n_sets = n_rotation_sets(group.set_bytes, self.env.l2_bytes) if group.rotate else 1
            try:
                flops, hbm = group.counts()
            except Exception as exc:
                flops = hbm = None
                self.fail(group.case_id("*"), group.kernel, "*", "counts", repr(exc))
            try:
                sets = [group.make_set() for _ in range(n_sets)]
            except torch.cuda.OutOfMemoryError as exc:
                self.fail(group.case_id("*"), group.kernel, "*", "setup", f"OutOfMemoryError: {exc}")
                return out_rows
            for v in runnable:
                cid = group.case_id(v.impl)
                try:
                    fns = [v.make(s) for s in sets]
                    if check and v.impl == "triton" and group.check is not None:
                        err = group.check(sets[0], fns[0])
                        if not err <= CHECK_REL_TOL:
                            self.fail(cid, group.kernel, v.impl, "check",
                                      f"relative error {err:.3g} vs vendor > {CHECK_REL_TOL}")
                    t = bench(fns, budget_s=self.cfg.case_budget_s, nvml=self.nvml)
                    out_rows.append(self._row(group, v.impl, t, flops, hbm, graph=False))
                    if graph and v.graph_ok and t.median_s < GRAPH_BELOW_S:
                        try:
                            tg = bench_graph(fns, budget_s=self.cfg.case_budget_s, nvml=self.nvml)
                            out_rows.append(self._row(group, v.impl, tg, flops, hbm, graph=True))
                        except Exception as exc:
                            self.fail(group.case_id(v.impl, True), group.kernel, v.impl, "graph",
                                      f"{type(exc).__name__}: {exc}")
                            torch.cuda.synchronize()
                except Exception as exc:
                    self.fail(cid, group.kernel, v.impl, "run", f"{type(exc).__name__}: {exc}"
                              + ("" if isinstance(exc, torch.cuda.OutOfMemoryError)
                                 else " | " + traceback.format_exc(limit=3).splitlines()[-3]))
                    try:
                        torch.cuda.synchronize()
                    except Exception:  # a sticky CUDA error; later cases will report it too
                        pass
                finally:
                    fns = None
        finally:
            big = group.set_bytes * max(len(sets), 1) > 1e9
            del sets
            if big:
                torch.cuda.empty_cache()
        self.rows.extend(out_rows)
        return out_rows

    def run_section(self, name: str, groups: list[Group], progress=None) -> None:
        budget_s = self.cfg.section_budget_s.get(name, 60.0)
        t0 = time.perf_counter()
        task = progress.add_task(name, total=len(groups)) if progress is not None else None
        for i, group in enumerate(groups):
            if time.perf_counter() - t0 > budget_s:
                for g in groups[i:]:
                    self.fail(g.case_id("*"), g.kernel, "*", "skipped",
                              f"section {name!r} time budget {budget_s:.0f} s spent")
                break
            self.run_group(group)
            if task is not None:
                progress.advance(task)
        self.section_s[name] = time.perf_counter() - t0
        if task is not None:
            progress.update(task, completed=len(groups))


# Cases timed a second time at the end of the sweep (repeatability); matched by case_id.
REPEAT_CASES = (
    "gemm-vendor-bf16-m8192-n8192-k8192",
    "gemm-triton-bf16-m8192-n8192-k8192",
    "gemm-vendor-bf16-m1-n4096-k14336",
    "gemm-vendor-bf16-m1024-n1024-k1024",
    "attention_prefill-vendor-bf16-b4-s4096-hq32-hkv8-d128-causal",
    "attention_decode-vendor-bf16-b16-ctx2048-hq32-hkv8-d128",
    "attention_decode-triton-bf16-b16-ctx2048-hq32-hkv8-d128",
    "copy-vendor-bytes1073741824",
    "copy-vendor-bytes67108864",
    "h2d-vendor-pinned-bytes1073741824",
    "h2d-vendor-pinned-bytes67108864",
)


def measure_repeats(runner: Runner, groups: list[Group]) -> None:
    """Re-time the :data:`REPEAT_CASES` present and store |t2 − t1| / min(t1, t2) on the first row."""
    by_id = {r["case_id"]: r for r in runner.rows}
    for group in groups:
        for v in group.variants:
            cid = group.case_id(v.impl)
            if cid not in REPEAT_CASES or cid not in by_id:
                continue
            n_before = len(runner.rows)
            again = runner.run_group(group, only_impl=v.impl, check=False)
            del runner.rows[n_before:]  # keep one row per case; the repeat only feeds the spread
            for row in again:  # the eager row, and the graph row where the kernel has one
                first = by_id.get(row["case_id"])
                if first is not None:
                    t1, t2 = first["median_s"], row["median_s"]
                    first["repeat_spread_frac"] = abs(t2 - t1) / min(t1, t2)


# ------------------------------------------------------------------------------------- entry point

@dataclasses.dataclass(frozen=True)
class RunResult:
    """What :func:`run_all` wrote, and the headline numbers (SI units) for a summary."""

    out_dir: Path
    files: dict
    n_kernel_rows: int
    n_failures: int
    headline: dict


def run_all(
    out_dir: Path | str | None = None,
    hardware_id: str | None = None,
    quick: bool = False,
    progress: bool = True,
    *,
    layers: bool = True,
    power: bool = True,
    power_run_s: float | None = None,
) -> RunResult:
    """Measure every kernel, a whole Llama layer and sustained power on the attached GPU.

    Args:
        out_dir: folder the files go to (default ``validate/measurements/<hardware_id>/``), each
            written atomically: ``kernels.csv``, ``failures.csv``, ``layers.csv``, ``power.csv``,
            ``power_trace.csv``, ``environment.json``.
        hardware_id: expected hwperf hardware id (``--hardware``); None accepts whatever GPU is
            attached (an unmapped one is filed under ``unknown-<name>``).
        quick: a tiny subset (a few shapes per kernel, 1 s power runs): seconds, for smoke tests.
        progress: show rich progress bars and a per-section log on stderr.
        layers, power: include the whole-layer and the sustained-power measurements.
        power_run_s: seconds per sustained power run (default 5 s, quick 1 s).

    Returns:
        :class:`RunResult` with the folder, file paths, row counts and headline numbers.

    Raises:
        NoGPUError: torch sees no CUDA GPU (the message says so; no measurement is attempted).
        HardwareMismatchError: ``hardware_id`` is unknown or is not the attached GPU.

    A full run takes about 6-7 minutes on an H100 (per-section time budgets skip what does not fit;
    skipped and failed cases are listed in ``failures.csv``); Triton kernels that fail to import or
    run are recorded there while the vendor references still run.
    """
    from validate.env import detect_environment, require_cuda

    torch = require_cuda()  # NoGPUError before anything else
    nvml = Nvml(0)
    env = detect_environment(hardware_id, nvml=nvml)  # HardwareMismatchError before any GPU work
    cfg = SweepConfig.quick_mode() if quick else SweepConfig.full()
    folder = Path(out_dir) if out_dir is not None else DEFAULT_OUT_DIR / env.hardware_id
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "kernels": folder / "kernels.csv", "failures": folder / "failures.csv",
        "environment": folder / "environment.json",
    }
    started = time.time()
    kern = _Kernels()
    runner = Runner(torch, env, nvml, cfg, kern)
    torch.backends.cuda.matmul.allow_tf32 = False  # bf16/fp8 only; keep fp32 paths honest

    meta: dict[str, Any] = {
        "environment": env.to_dict(),
        "quick": quick,
        "started_unix_s": started,
        "case_budget_s": cfg.case_budget_s,
        "section_budget_s": cfg.section_budget_s,
        "graph_below_s": GRAPH_BELOW_S,
        "check_rel_tol": CHECK_REL_TOL,
        "method": {
            "timing": "eager: batches of back-to-back calls (~1 ms, >= one pass over the input "
                      "sets), one CUDA event pair per batch, per-call = batch time / calls; graph: "
                      "per replay / calls per graph; median/p10/p90 over batches or replays of "
                      "per-call seconds; warm-up first; batches fill case_budget_s; n_reps = calls",
            "l2_rotation": "input sets smaller than 3x L2 are replicated until the cycle spans 3x "
                           "L2 (at most 256 sets)",
            "sm_clock_hz": "NVML SM clock read after enqueueing the timed loop (GPU busy)",
            "power_w": "NVML nvmlDeviceGetPowerUsage at the end of the timed loop (a trailing "
                       "~1 s average on Hopper)",
            "energy_j": "NVML total-energy counter difference over the timed loop's wall time; "
                        "empty for loops shorter than validate.timing.ENERGY_MIN_WALL_S (the "
                        "counter advances in ~100 ms steps); power.csv has sustained energy",
            "repeat_spread_frac": "|t2 - t1| / min(t1, t2) of a case timed early and again at "
                                  "the end of the kernel sweep",
            "counts": "flops/hbm_bytes from kernels.<module>.flops/hbm_bytes; copy and KV "
                      "gather/scatter hbm_bytes = 2 x bytes; h2d/d2h hbm_bytes = bytes",
        },
    }

    def flush(final: bool = False):
        write_csv_atomic(files["kernels"], runner.rows, KERNEL_COLUMNS)
        write_csv_atomic(files["failures"], runner.failures, FAILURE_COLUMNS)
        meta.update(
            section_s=runner.section_s,
            kernel_import_errors=kern.errors,
            n_kernel_rows=len(runner.rows),
            n_failures=len(runner.failures),
            finished=final,
            elapsed_s=time.time() - started,
        )
        write_json_atomic(files["environment"], meta)

    console, bar = _progress(progress)
    # Vendor references of GEMM and prefill first, their Triton rows last: Triton autotunes per
    # shape (seconds each), so if a section's time budget runs out it is Triton coverage that
    # thins, spread evenly over the grid by the interleaved order, never the vendor baseline.
    fp8_ok = torch.cuda.get_device_capability(0) >= (8, 9)
    sections = [
        ("gemm", lambda: only_impl(gemm_groups(torch, kern, cfg), "vendor")),
        ("attention_prefill", lambda: only_impl(prefill_groups(torch, kern, cfg), "vendor")),
        ("attention_decode", lambda: decode_groups(torch, kern, cfg)),
        ("copy", lambda: copy_groups(torch, kern, cfg)),
        ("host", lambda: host_groups(torch, kern, cfg)),
        ("kv", lambda: kv_groups(torch, kern, cfg)),
        ("gemm_fp8", lambda: gemm_groups(torch, kern, cfg, fp8=True) if fp8_ok else []),
        ("gemm_triton", lambda: interleave(only_impl(gemm_groups(torch, kern, cfg), "triton"),
                                           "m", GEMM_M_TRITON)),
        ("attention_prefill_triton", lambda: interleave(
            only_impl(prefill_groups(torch, kern, cfg), "triton"), "seq", PREFILL_SEQS)),
    ]
    assert tuple(name for name, _ in sections) == SECTIONS
    all_groups: list[Group] = []
    with bar or _nullcontext():
        for name, build in sections:
            groups = build()
            all_groups += groups
            runner.run_section(name, groups, bar)
            flush()
            _log(console, f"{name}: {len(groups)} shapes, {runner.section_s[name]:.1f} s, "
                          f"{len(runner.rows)} rows, {len(runner.failures)} failures so far")
            if name == "kv":  # drop the groups holding the 2 GiB KV cache; not repeated
                all_groups = [g for g in all_groups if g.kernel not in ("kv_gather", "kv_scatter")]
                groups = None
        t0 = time.perf_counter()
        measure_repeats(runner, all_groups)
        runner.section_s["repeats"] = time.perf_counter() - t0
        del all_groups
        torch.cuda.empty_cache()
        flush()
        _log(console, f"repeats: {runner.section_s['repeats']:.1f} s")

        if layers:
            from validate.layers import LAYER_COLUMNS, run_layers

            t0 = time.perf_counter()
            layer_rows, layer_failures = run_layers(env, nvml, quick=quick, progress=bar,
                                                    budget_s=cfg.section_budget_s["layers"])
            runner.failures += layer_failures
            files["layers"] = write_csv_atomic(folder / "layers.csv", layer_rows, LAYER_COLUMNS)
            runner.section_s["layers"] = time.perf_counter() - t0
            meta["n_layer_rows"] = len(layer_rows)
            flush()
            _log(console, f"layers: {len(layer_rows)} rows, {runner.section_s['layers']:.1f} s")
        else:
            layer_rows = []
        if power:
            from validate.power import POWER_COLUMNS, TRACE_COLUMNS, run_power

            t0 = time.perf_counter()
            run_s = power_run_s if power_run_s is not None else (1.0 if quick else 5.0)
            power_rows, trace_rows, power_meta = run_power(env, nvml, run_s=run_s, progress=bar)
            files["power"] = write_csv_atomic(folder / "power.csv", power_rows, POWER_COLUMNS)
            files["power_trace"] = write_csv_atomic(folder / "power_trace.csv", trace_rows,
                                                    TRACE_COLUMNS)
            runner.section_s["power"] = time.perf_counter() - t0
            meta["power"] = power_meta
            flush()
            _log(console, f"power: {len(power_rows)} runs, {runner.section_s['power']:.1f} s")
        else:
            power_rows = []
    flush(final=True)
    return RunResult(
        out_dir=folder,
        files={k: Path(v) for k, v in files.items()},
        n_kernel_rows=len(runner.rows),
        n_failures=len(runner.failures),
        headline=headline(runner.rows, layer_rows, power_rows),
    )


def headline(rows: list[dict], layer_rows: list[dict] = (), power_rows: list[dict] = ()) -> dict:
    """A few headline numbers in SI units (None where the case was not measured)."""
    by_id = {r["case_id"]: r for r in rows}

    def rate(case_id, key):
        r = by_id.get(case_id)
        return None if r is None else r.get(key)

    def best(kernel, impl, key, **where):
        vals = [r[key] for r in rows if r["kernel"] == kernel and r["impl"] == impl
                and r.get(key) is not None and not r["graph"]
                and all(r.get(k) == v for k, v in where.items())]
        return max(vals) if vals else None

    out = {
        "gemm_vendor_bf16_8192_flops_per_s": rate("gemm-vendor-bf16-m8192-n8192-k8192",
                                                  "achieved_flops_per_s"),
        "gemm_triton_bf16_8192_flops_per_s": rate("gemm-triton-bf16-m8192-n8192-k8192",
                                                  "achieved_flops_per_s"),
        "gemm_vendor_fp8_8192_flops_per_s": rate("gemm-vendor-fp8-m8192-n8192-k8192",
                                                 "achieved_flops_per_s"),
        "gemm_triton_fp8_8192_flops_per_s": rate("gemm-triton-fp8-m8192-n8192-k8192",
                                                 "achieved_flops_per_s"),
        "copy_vendor_1gib_bytes_per_s": rate("copy-vendor-bytes1073741824", "achieved_bytes_per_s"),
        "copy_triton_1gib_bytes_per_s": rate("copy-triton-bytes1073741824", "achieved_bytes_per_s"),
        "h2d_pinned_1gib_bytes_per_s": rate("h2d-vendor-pinned-bytes1073741824",
                                            "achieved_bytes_per_s"),
        "d2h_pinned_1gib_bytes_per_s": rate("d2h-vendor-pinned-bytes1073741824",
                                            "achieved_bytes_per_s"),
        "h2d_pageable_1gib_bytes_per_s": rate("h2d-vendor-pageable-bytes1073741824",
                                              "achieved_bytes_per_s"),
        "prefill_vendor_best_flops_per_s": best("attention_prefill", "vendor", "achieved_flops_per_s"),
        "prefill_triton_best_flops_per_s": best("attention_prefill", "triton", "achieved_flops_per_s"),
        "decode_vendor_best_bytes_per_s": best("attention_decode", "vendor", "achieved_bytes_per_s"),
        "decode_triton_best_bytes_per_s": best("attention_decode", "triton", "achieved_bytes_per_s",
                                               paged=False),
        "decode_triton_paged_best_bytes_per_s": best("attention_decode", "triton",
                                                     "achieved_bytes_per_s", paged=True),
    }
    for p in power_rows:
        out[f"power_{p['run']}_mean_power_w"] = p.get("mean_power_w")
        out[f"power_{p['run']}_mean_sm_clock_hz"] = p.get("mean_sm_clock_hz")
        if p.get("achieved_flops_per_s") is not None:
            out[f"power_{p['run']}_achieved_flops_per_s"] = p["achieved_flops_per_s"]
        if p.get("achieved_bytes_per_s") is not None:
            out[f"power_{p['run']}_achieved_bytes_per_s"] = p["achieved_bytes_per_s"]
    return out


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _progress(enabled: bool):
    """(console, Progress) on stderr, or (None, None) when progress is off."""
    if not enabled:
        return None, None
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                               TimeElapsedColumn)

    console = Console(stderr=True)
    bar = Progress(SpinnerColumn(), TextColumn("[bold]{task.description:<18}"), BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn(), console=console)
    return console, bar


def _log(console, message: str) -> None:
    if console is not None:
        console.log(message)
