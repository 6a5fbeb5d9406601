"""The cases of the operating-state measurements (:mod:`validate.states`): a few vendor kernels and
whole Llama-3-8B decoder-layer steps, each timed "burst", "sustained" and (short kernels) "eager_call".

Kernel cases are built by the kernel catalogue's own group builders (:mod:`validate.cases.gemm`,
:mod:`~validate.cases.attention`, :mod:`~validate.cases.copies`), so their case ids, shape columns,
input sets and ``flops`` / ``hbm_bytes`` counts are those of ``kernels.csv`` (vendor variant only:
cuBLAS ``torch.matmul``, fp8 ``torch._scaled_mm``, SDPA, ``copy_``). Layer cases are
:class:`validate.layers.LlamaLayer` steps with the case ids and columns of ``layers.csv``: prefill
eager (as layers.csv times it), decode captured as a CUDA graph.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from validate.runner import Group, Kernels, SweepConfig

# (m, n, k) of the bf16 GEMMs; fp8 adds FP8_GEMMS where the GPU has fp8 (compute capability >= 8.9)
BF16_GEMMS: tuple[tuple[int, int, int], ...] = (
    (8192, 8192, 8192), (4096, 4096, 4096), (4096, 14336, 4096), (1024, 4096, 4096),
    (1, 28672, 4096), (1, 8192, 28672), (64, 4096, 4096), (16, 4096, 4096), (256, 14336, 4096),
)
FP8_GEMMS: tuple[tuple[int, int, int], ...] = ((4096, 4096, 4096),)
# (batch, seq, n_q_heads, n_kv_heads, head_dim), causal
PREFILLS: tuple[tuple[int, int, int, int, int], ...] = (
    (4, 4096, 32, 8, 128), (1, 8192, 32, 8, 128), (8, 1024, 32, 8, 128),
)
# (batch, context, n_q_heads, n_kv_heads, head_dim), contiguous cache
DECODES: tuple[tuple[int, int, int, int, int], ...] = (
    (64, 4096, 32, 8, 128), (16, 32768, 32, 8, 128), (8, 1024, 32, 8, 128),
)
COPIES: tuple[int, ...] = (2**30, 64 * 2**20)  # bytes
LAYER_MODEL = "llama-3-8b"
# (mode, batch, seq or context, graph)
LAYER_STEPS: tuple[tuple[str, int, int, bool], ...] = (
    ("prefill", 1, 2048, False), ("decode", 32, 4096, True), ("decode", 8, 1024, True),
)

# --states-set extra: more shapes per class (so each class has several held-out cases), measured in a
# second run and merged; the first two are repeats of full-set cases, a check of run-to-run (and
# board-to-board) agreement, kept out of the merged states.csv.
EXTRA_REPEATS = ("gemm-vendor-bf16-m8192-n8192-k8192", "attention_decode-vendor-bf16-b64-ctx4096-hq32-hkv8-d128")
EXTRA_BF16_GEMMS: tuple[tuple[int, int, int], ...] = (
    (8192, 8192, 8192), (2048, 8192, 8192), (512, 28672, 4096), (2048, 4096, 4096), (128, 4096, 14336),
    (8192, 1024, 8192), (4, 57344, 8192),
)
EXTRA_FP8_GEMMS: tuple[tuple[int, int, int], ...] = ((8192, 8192, 8192), (1024, 4096, 4096), (16, 57344, 8192))
EXTRA_PREFILLS = ((16, 512, 32, 8, 128), (2, 8192, 64, 8, 128), (1, 16384, 32, 32, 128))
EXTRA_DECODES = ((64, 4096, 32, 8, 128), (128, 2048, 32, 8, 128), (32, 8192, 32, 8, 128),
                 (1, 131072, 32, 8, 128), (256, 1024, 64, 8, 128))
EXTRA_COPIES = (256 * 2**20,)
EXTRA_LAYER_STEPS = (("prefill", 4, 1024, False), ("decode", 64, 2048, True), ("decode", 128, 8192, True))
# --states-set extra2: the classes with one or two held-out cases (device copies, eager prefill layers,
# fp8 GEMMs — also their ncu DRAM bytes — and decode attention at the power limit); 12 cases, ~3 min.
EXTRA2_BF16_GEMMS: tuple[tuple[int, int, int], ...] = ()
EXTRA2_FP8_GEMMS: tuple[tuple[int, int, int], ...] = ((4096, 14336, 4096), (2048, 8192, 8192), (2048, 4096, 4096))
EXTRA2_PREFILLS: tuple[tuple[int, int, int, int, int], ...] = ()
EXTRA2_DECODES = ((16, 8192, 32, 8, 128), (4, 65536, 32, 8, 128), (96, 4096, 64, 8, 128))
EXTRA2_COPIES = (16 * 2**20, 4 * 2**30)
EXTRA2_LAYER_STEPS = (("prefill", 1, 4096, False), ("prefill", 2, 2048, False), ("prefill", 8, 512, False),
                      ("decode", 16, 2048, True))
# --states-set dram (for the ncu DRAM bytes it also records): the two classes issue 9's DRAM check cannot score
# yet. fp8 GEMMs (predicted 16.7% off ncu, B re-read ~2.3x at M = 2048-4096 whatever the band count): K swept
# at m = n = 4096 and M at n = k = 8192, each fp8 shape with its bf16 twin, so the L2 working-set rule can be
# read off one variable at a time. Copies: a device copy_ is a driver memcpy ncu does not profile, so the
# Triton stream copy (kernels/kv_copy.py) stands in, 64 MiB and 1 GiB. 22 cases; keep them out of states.csv
# (the copy rows are impl "triton").
DRAM_GEMM_SHAPES: tuple[tuple[int, int, int], ...] = (
    (4096, 4096, 1024), (4096, 4096, 2048), (4096, 4096, 8192), (4096, 4096, 16384),
    (512, 8192, 8192), (1024, 8192, 8192), (4096, 8192, 8192), (6144, 8192, 8192),
    (2048, 16384, 8192), (2048, 8192, 16384),
)
DRAM_TRITON_COPIES = (64 * 2**20, 2**30)
CASE_SETS = ("full", "quick", "extra", "extra2", "dram")

# --quick: one small case per kind (seconds in all), for smoke tests
QUICK_BF16_GEMMS = ((1024, 4096, 4096), (16, 4096, 4096))
QUICK_PREFILLS = ((2, 1024, 32, 8, 128),)
QUICK_DECODES = ((8, 1024, 32, 8, 128),)
QUICK_COPIES = (64 * 2**20,)
QUICK_LAYER_STEPS = (("decode", 8, 1024, True),)


@dataclasses.dataclass
class StateCase:
    """One case: what to call and how it is described in states.csv / dram_bytes.csv.

    ``make_fns(n)`` builds ``n`` zero-argument closures doing the same work, each on its own input
    set (the runner rotates over them so small inputs are not served from L2); a layer case always
    returns one closure (its weights exceed L2). ``graph`` says whether burst and sustained time CUDA
    graph replays (True) or back-to-back eager calls (the prefill layer step, as layers.csv).
    """

    case_id: str
    kernel: str  # gemm | attention_prefill | attention_decode | copy | layer
    impl: str
    shape: dict  # the states.csv shape / layer columns of this case
    graph: bool
    set_bytes: int  # device bytes of one input set, for L2 rotation (0: never rotate)
    make_fns: Callable[[int], list[Callable[[], Any]]]
    counts: Callable[[], tuple[int | None, int | None]]  # (flops, hbm_bytes)


def _from_group(group: Group, impl: str = "vendor") -> StateCase:
    """One variant of a catalogue group (the vendor library's by default) as a state case (same id, shape and
    counts)."""
    (variant,) = [v for v in group.variants if v.impl == impl]

    def make_fns(n: int):
        return [variant.make(group.make_set()) for _ in range(max(1, n))]

    shape = {"dtype": group.dtype, **group.shape}
    if group.kernel == "attention_decode":
        shape.setdefault("paged", False)
    # A device copy_ captured in a CUDA graph becomes a memcpy node run by the copy engines (1 GiB: 2.7
    # TB/s vs 4.26 TB/s for the kernel an eager copy_ launches): copies are timed as eager calls.
    return StateCase(case_id=group.case_id(impl), kernel=group.kernel, impl=impl,
                     shape=shape, graph=group.kernel != "copy", set_bytes=group.set_bytes if group.rotate else 0,
                     make_fns=make_fns, counts=group.counts)


def _pick(case_set: str, full, quick, extra, extra2=(), dram=()):
    return {"full": full, "quick": quick, "extra": extra, "extra2": extra2, "dram": dram}[case_set]


def _gemm_cases(torch, kern: Kernels, case_set: str, fp8_ok: bool) -> list[StateCase]:
    from validate.cases.gemm import _gemm_group, llama_linears

    linears = llama_linears()
    shapes = [(s, "bf16") for s in _pick(case_set, BF16_GEMMS, QUICK_BF16_GEMMS, EXTRA_BF16_GEMMS, EXTRA2_BF16_GEMMS,
                                         DRAM_GEMM_SHAPES)]
    if fp8_ok:
        shapes += [(s, "fp8") for s in _pick(case_set, FP8_GEMMS, (), EXTRA_FP8_GEMMS, EXTRA2_FP8_GEMMS,
                                             DRAM_GEMM_SHAPES)]
    return [_from_group(_gemm_group(torch, kern, m, n, k, dtype, False, linears))
            for (m, n, k), dtype in shapes]


def _attention_cases(torch, kern: Kernels, case_set: str) -> list[StateCase]:
    from validate.cases.attention import _decode_group, _prefill_group, _sdpa

    sdpa, native_gqa = _sdpa(torch)
    prefills = _pick(case_set, PREFILLS, QUICK_PREFILLS, EXTRA_PREFILLS, EXTRA2_PREFILLS)
    decodes = _pick(case_set, DECODES, QUICK_DECODES, EXTRA_DECODES, EXTRA2_DECODES)
    cases = [_from_group(_prefill_group(torch, kern, sdpa, native_gqa, b, s, hq, hkv, d, True))
             for b, s, hq, hkv, d in prefills]
    cases += [_from_group(_decode_group(torch, kern, sdpa, native_gqa, b, c, hq, hkv, d, False))
              for b, c, hq, hkv, d in decodes]
    return cases


def _copy_cases(torch, kern: Kernels, case_set: str) -> list[StateCase]:
    from validate.cases.copies import copy_groups

    groups = {g.shape["bytes"]: g for g in copy_groups(torch, kern, SweepConfig.full())}
    if case_set == "dram":
        return [_from_group(groups[nbytes], "triton") for nbytes in DRAM_TRITON_COPIES]
    sizes = _pick(case_set, COPIES, QUICK_COPIES, EXTRA_COPIES, EXTRA2_COPIES)
    return [_from_group(groups[nbytes]) for nbytes in sizes]


def layer_case(mode: str, batch: int, length: int, graph: bool) -> StateCase:
    """A Llama-3-8B decoder-layer step: prefill (``length`` = seq) or decode (``length`` = context);
    case id and columns as layers.csv."""
    from validate.layers import LLAMA_3_8B

    dims = LLAMA_3_8B
    seq, context = (length, None) if mode == "prefill" else (None, length)
    tag = f"s{seq}" if mode == "prefill" else f"ctx{context}"
    shape = {"dtype": "bf16", "mode": mode, "model": dims.model, "hidden": dims.hidden,
             "n_q_heads": dims.n_q_heads, "n_kv_heads": dims.n_kv_heads,
             "head_dim": dims.head_dim, "ffn_hidden": dims.ffn_hidden, "batch": batch, "seq": seq,
             "context": context}
    return StateCase(
        case_id=f"layer-{dims.model}-{mode}-b{batch}-{tag}" + ("-graph" if graph else ""),
        kernel="layer", impl="vendor", shape=shape, graph=graph, set_bytes=0,
        make_fns=lambda n: [_layer_step(dims, mode, batch, length)],
        counts=lambda: (None, None),
    )


def _layer_step(dims, mode: str, batch: int, length: int) -> Callable[[], Any]:
    """One step on fresh random weights; the closure keeps the layer (and KV cache) alive."""
    import torch

    from validate.layers import LlamaLayer

    layer = LlamaLayer(dims)
    if mode == "decode":
        step, _, _ = layer.decode_step(batch, length)
        return step
    x = torch.randn(batch, length, dims.hidden, device="cuda", dtype=torch.bfloat16)
    cos, sin = layer.rope_tables(torch.arange(length, device="cuda"))
    return lambda: layer.prefill(x, cos, sin)


def state_cases(torch, kern: Kernels, quick: bool = False, fp8_ok: bool = True,
                case_set: str | None = None) -> list[StateCase]:
    """Every state case of ``case_set`` ("full", "quick" — also ``quick=True`` — "extra", "extra2" or
    "dram": fp8 GEMMs with bf16 twins and Triton copies) in run
    order: GEMMs, prefill, decode, copies, then layer steps. Nothing is allocated until a case's
    ``make_fns`` is called."""
    case_set = case_set or ("quick" if quick else "full")
    if case_set not in CASE_SETS:
        raise ValueError(f"case_set must be one of {', '.join(CASE_SETS)}, got {case_set!r}")
    cases = _gemm_cases(torch, kern, case_set, fp8_ok)
    cases += _attention_cases(torch, kern, case_set)
    cases += _copy_cases(torch, kern, case_set)
    cases += [layer_case(*step) for step in _pick(case_set, LAYER_STEPS, QUICK_LAYER_STEPS, EXTRA_LAYER_STEPS, EXTRA2_LAYER_STEPS)]
    return cases
