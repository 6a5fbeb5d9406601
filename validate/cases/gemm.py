"""GEMM cases: bf16 squares and the linear layers of Llama-3 models, fp8 squares and Llama shapes.

Vendor: ``torch.matmul(a, w.t())`` (cuBLAS), fp8 ``torch._scaled_mm``; Triton: ``kernels.gemm.matmul``.
The Llama shapes are read from the model presets in ``workloads/`` (:func:`llama_linears`).
"""

from __future__ import annotations

from validate.runner import Group, Kernels, SweepConfig, Variant, rel_err

LLAMA_MODELS = ("llama-3-8b", "llama-3-70b")
GEMM_M_VENDOR = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
# Triton autotunes per (M, N, K) (~1-2 s each), so it gets a thinner M grid to fit the time budget.
GEMM_M_TRITON = (1, 8, 32, 128, 512, 2048, 8192)
GEMM_SQUARE = (256, 512, 1024, 2048, 4096, 8192)
DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp8": "float8_e4m3fn"}
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp8": 1}


def linear_shapes(model) -> dict[str, tuple[int, int]]:
    """(n = out features, k = in features) of one decoder layer's linears, nn.Linear weight [n, k].

    ``model`` is a :class:`workloads.ModelSpec`: fused q/k/v projection, attention output, fused
    gate+up (gated MLP) or up projection, down projection.
    """
    return {
        "qkv": (model.q_width + 2 * model.kv_width, model.hidden),
        "o": (model.hidden, model.q_width),
        "gate_up": ((2 if model.gated_mlp else 1) * model.ffn_hidden, model.hidden),
        "down": (model.hidden, model.ffn_hidden),
    }


def llama_linears() -> dict[str, dict[str, tuple[int, int]]]:
    """Model id → linear name → (n, k), for :data:`LLAMA_MODELS` (from ``workloads.load_model``)."""
    import workloads

    return {name: linear_shapes(workloads.load_model(name)) for name in LLAMA_MODELS}


def _repeated(impl: str, dtype: str, m: int, n: int, k: int, linears: dict) -> bool:
    """Timed again at the end: the bf16 8192³ square (both impls); vendor only, the 1024³ square
    and the M = 1 (decode) Llama-3-8B down projection."""
    if dtype != "bf16":
        return False
    if m == n == k == 8192:
        return True
    return impl == "vendor" and (m == n == k == 1024 or (m, (n, k)) == (1, linears["llama-3-8b"]["down"]))


def _headline(dtype: str, m: int, n: int, k: int) -> str:
    """The 8192³ square of each dtype and impl is a headline number."""
    return f"gemm_{{impl}}_{dtype}_8192_flops_per_s" if m == n == k == 8192 else ""


def _shapes(cfg: SweepConfig, fp8: bool, linears: dict) -> list[tuple[int, int, int, bool]]:
    """(m, n, k, with_triton) in sweep order; may repeat a shape."""
    if fp8:
        shapes = [(2048, 2048, 2048, True), (4096, 4096, 4096, True), (8192, 8192, 8192, True)]
        n, k = linears["llama-3-70b"]["gate_up"]
        shapes += [(16, n, k, True), (4096, n, k, True)]
        n, k = linears["llama-3-8b"]["down"]
        shapes += [(128, n, k, True)]
        if cfg.quick:
            shapes = [(1024, 1024, 1024, True)]
    elif cfg.quick:
        n, k = linears["llama-3-8b"]["qkv"]
        shapes = [(1024, 1024, 1024, True), (1, n, k, True), (128, n, k, True)]
    else:
        shapes = [(s, s, s, True) for s in GEMM_SQUARE]
        for model in linears.values():
            for n, k in model.values():
                shapes += [(m, n, k, m in GEMM_M_TRITON) for m in GEMM_M_VENDOR]
    return shapes


def gemm_groups(torch, kern: Kernels, cfg: SweepConfig, fp8: bool = False) -> list[Group]:
    """bf16 square and Llama-layer GEMMs (vendor on the full M grid, Triton on a thinner one)."""
    linears = llama_linears()
    dtype = "fp8" if fp8 else "bf16"
    unique: dict[tuple[int, int, int], bool] = {}  # square 4096/8192 recur as Llama o-proj shapes
    for m, n, k, with_triton in _shapes(cfg, fp8, linears):
        unique[(m, n, k)] = unique.get((m, n, k), False) or with_triton
    return [_gemm_group(torch, kern, m, n, k, dtype, t, linears) for (m, n, k), t in unique.items()]


def _gemm_group(torch, kern, m, n, k, dtype, with_triton, linears) -> Group:
    in_b = DTYPE_BYTES[dtype]
    out_b = 2
    tdt = getattr(torch, DTYPE_NAMES[dtype])

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

    def check(s, fn):
        a, b = s
        if dtype == "fp8":
            ref = a.float() @ b.float()
        else:
            ref = torch.matmul(a, b)
        return rel_err(fn(), ref)

    def triton_make(s):
        a, b = s
        mm = kern.get("gemm").matmul
        return lambda: mm(a, b)

    impls = ["vendor"] + (["triton"] if with_triton else [])
    makes = {"vendor": (vendor, None), "triton": (triton_make, "gemm")}
    variants = [Variant(impl, makes[impl][0], module=makes[impl][1],
                        repeat=_repeated(impl, dtype, m, n, k, linears)) for impl in impls]
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
        headline=_headline(dtype, m, n, k),
    )
