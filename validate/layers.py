"""Whole-layer check: one Llama-style decoder block in plain torch, timed in prefill and decode.

The block is what hwperf's op graph models for one layer (bf16 throughout):

    h = RMSNorm(x);  q, k, v = split(h @ W_qkvᵀ);  RoPE(q, k);  a = SDPA(q, K, V) (GQA, causal in
    prefill);  x = x + a @ W_oᵀ;  h = RMSNorm(x);  g, u = split(h @ W_gate_upᵀ);
    x = x + (silu(g) · u) @ W_downᵀ

Prefill runs (batch, seq) tokens through the block with a causal mask. Decode runs one new token per
sequence against a KV cache pre-filled with ``context`` tokens: the new K/V are written at position
``context`` and the query attends to all ``context + 1`` positions. Decode is timed eagerly (one
launch per op, as an engine without graphs pays) and as one CUDA-graph replay per step.

Weights of one layer (436 MB for Llama-3-8B, 1.7 GB for 70B) are far larger than L2, so inputs are
not rotated. RoPE tables are built once outside the timed region, as serving engines cache them.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from validate.timing import bench, bench_graph

LAYER_COLUMNS: tuple[str, ...] = (
    "case_id", "mode", "graph", "model", "hidden", "n_q_heads", "n_kv_heads", "head_dim",
    "ffn_hidden", "batch", "seq", "context", "median_s", "p10_s", "p90_s", "n_reps",
    "sm_clock_hz", "power_w", "gpu_name", "hardware_id",
)


@dataclasses.dataclass(frozen=True)
class LayerDims:
    model: str
    hidden: int
    n_q_heads: int
    n_kv_heads: int
    head_dim: int
    ffn_hidden: int
    rope_theta: float = 500000.0  # Llama 3
    norm_eps: float = 1e-5


def layer_dims(model_id: str) -> LayerDims:
    """One layer's dims read from the ``workloads`` model preset (rope theta and norm eps keep the
    Llama-3 defaults above: the presets do not carry them)."""
    import workloads

    m = workloads.load_model(model_id)
    return LayerDims(m.id, m.hidden, m.n_q_heads, m.n_kv_heads, m.head_dim, m.ffn_hidden)


LLAMA_3_8B = layer_dims("llama-3-8b")
LLAMA_3_70B = layer_dims("llama-3-70b")

# (batch, seq): 12 shapes so that the held-out half of the prefill layer check has 6 per model.
PREFILL_CASES = ((1, 256), (1, 512), (1, 1024), (1, 2048), (1, 4096), (1, 8192), (2, 2048), (2, 8192),
                 (4, 1024), (4, 4096), (8, 512), (8, 2048))
DECODE_BATCHES = (1, 8, 32, 128)
DECODE_CONTEXTS = (512, 4096, 16384)
MAX_KV_BYTES = 9e9  # one layer's K+V cache; larger decode cases are skipped


class LlamaLayer:
    """Random bf16 weights of one decoder layer on the GPU, with prefill and decode forwards."""

    def __init__(self, dims: LayerDims, device: str = "cuda", seed: int = 0):
        import torch

        self.torch, self.dims = torch, dims
        g = torch.Generator(device=device).manual_seed(seed)
        d = dims
        qkv_out = (d.n_q_heads + 2 * d.n_kv_heads) * d.head_dim

        def w(*shape):  # std 0.02 keeps activations O(1) through the block, like a trained model
            return (torch.randn(*shape, device=device, generator=g) * 0.02).to(torch.bfloat16)

        self.w_qkv = w(qkv_out, d.hidden)
        self.w_o = w(d.hidden, d.n_q_heads * d.head_dim)
        self.w_gate_up = w(2 * d.ffn_hidden, d.hidden)
        self.w_down = w(d.hidden, d.ffn_hidden)
        self.norm1 = torch.ones(d.hidden, device=device, dtype=torch.bfloat16)
        self.norm2 = torch.ones(d.hidden, device=device, dtype=torch.bfloat16)
        self.device = device

    def rope_tables(self, positions):
        """cos, sin [len(positions), head_dim/2] in bf16 (Llama's half-split rotary layout)."""
        torch, d = self.torch, self.dims
        inv = 1.0 / (d.rope_theta ** (torch.arange(0, d.head_dim, 2, device=self.device).float()
                                      / d.head_dim))
        ang = positions.float()[:, None] * inv[None, :]
        return ang.cos().to(torch.bfloat16), ang.sin().to(torch.bfloat16)

    def _rms(self, x, w):
        xf = x.float()
        return (xf * self.torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.dims.norm_eps)
                ).to(x.dtype) * w

    @staticmethod
    def _rope(x, cos, sin):
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]
        return _cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin))

    def _qkv(self, x, cos, sin):
        F, d = self.torch.nn.functional, self.dims
        b, s, _ = x.shape
        qkv = F.linear(self._rms(x, self.norm1), self.w_qkv)
        q, k, v = qkv.split([d.n_q_heads * d.head_dim, d.n_kv_heads * d.head_dim,
                             d.n_kv_heads * d.head_dim], dim=-1)
        q = q.view(b, s, d.n_q_heads, d.head_dim).transpose(1, 2)
        k = k.view(b, s, d.n_kv_heads, d.head_dim).transpose(1, 2)
        v = v.view(b, s, d.n_kv_heads, d.head_dim).transpose(1, 2)
        return self._rope(q, cos, sin), self._rope(k, cos, sin), v

    def _out_and_mlp(self, x, attn):
        F = self.torch.nn.functional
        b, _, s, _ = attn.shape
        x = x + F.linear(attn.transpose(1, 2).reshape(b, s, -1), self.w_o)
        gate, up = F.linear(self._rms(x, self.norm2), self.w_gate_up).chunk(2, dim=-1)
        return x + F.linear(F.silu(gate) * up, self.w_down)

    def prefill(self, x, cos, sin):
        """x [batch, seq, hidden] → [batch, seq, hidden]; causal self-attention over the chunk."""
        F, d = self.torch.nn.functional, self.dims
        q, k, v = self._qkv(x, cos, sin)
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                              enable_gqa=d.n_q_heads != d.n_kv_heads)
        return self._out_and_mlp(x, attn)

    def decode_step(self, batch: int, context: int):
        """A zero-argument decode step over a pre-filled cache; returns (step, k_cache, v_cache).

        The step reads a static input ``x`` [batch, 1, hidden] and writes the new token's K/V at
        position ``context`` (so replays are idempotent and CUDA-graph capturable).
        """
        torch, F, d = self.torch, self.torch.nn.functional, self.dims
        shape = (batch, d.n_kv_heads, context + 1, d.head_dim)
        k_cache = torch.randn(shape, device=self.device, dtype=torch.bfloat16)
        v_cache = torch.randn(shape, device=self.device, dtype=torch.bfloat16)
        x = torch.randn(batch, 1, d.hidden, device=self.device, dtype=torch.bfloat16)
        cos, sin = self.rope_tables(torch.tensor([context], device=self.device))

        def step():
            q, k, v = self._qkv(x, cos, sin)
            k_cache[:, :, context:context + 1].copy_(k)
            v_cache[:, :, context:context + 1].copy_(v)
            attn = F.scaled_dot_product_attention(q, k_cache, v_cache, is_causal=False,
                                                  enable_gqa=d.n_q_heads != d.n_kv_heads)
            return self._out_and_mlp(x, attn)

        return step, k_cache, v_cache


def _cat(parts):
    import torch

    return torch.cat(parts, dim=-1)


def kv_cache_bytes(dims: LayerDims, batch: int, context: int) -> int:
    """K and V of one layer, bf16: 2 · batch · n_kv_heads · (context + 1) · head_dim · 2 bytes."""
    return 2 * batch * dims.n_kv_heads * (context + 1) * dims.head_dim * 2


@dataclasses.dataclass
class _Sweep:
    """One :func:`run_layers` call's state: the rows and failures it collects, its budgets, its bar."""

    env: Any
    nvml: Any
    budget_s: float  # for all layer cases together; cases after it is spent are listed as skipped
    case_budget_s: float
    t0: float  # time.perf_counter() when the sweep began, for budget_s
    progress: Any = None
    task: Any = None
    rows: list[dict] = dataclasses.field(default_factory=list)
    failures: list[dict] = dataclasses.field(default_factory=list)

    def base(self, dims, mode, graph, batch, seq, context):
        env = self.env
        tag = f"s{seq}" if mode == "prefill" else f"ctx{context}"
        return {
            "case_id": f"layer-{dims.model}-{mode}-b{batch}-{tag}" + ("-graph" if graph else ""),
            "mode": mode, "graph": graph, "model": dims.model, "hidden": dims.hidden,
            "n_q_heads": dims.n_q_heads, "n_kv_heads": dims.n_kv_heads, "head_dim": dims.head_dim,
            "ffn_hidden": dims.ffn_hidden, "batch": batch, "seq": seq, "context": context,
            "gpu_name": env.gpu_name, "hardware_id": env.hardware_id,
        }

    def add(self, row, t):
        row.update(median_s=t.median_s, p10_s=t.p10_s, p90_s=t.p90_s, n_reps=t.n_reps,
                   sm_clock_hz=t.sm_clock_hz, power_w=t.power_w)
        self.rows.append(row)

    def fail(self, row, stage, exc):
        self.failures.append({"case_id": row["case_id"], "kernel": "layer", "impl": "vendor",
                              "stage": stage, "error": " ".join(f"{type(exc).__name__}: {exc}".split())[:600]})

    def spent(self, row) -> bool:
        """True (and ``row`` listed as skipped) once the layers budget is spent."""
        if time.perf_counter() - self.t0 <= self.budget_s:
            return False
        self.fail(row, "skipped", RuntimeError(f"layers time budget {self.budget_s:.0f} s spent"))
        return True

    def advance(self):
        if self.task is not None:
            self.progress.advance(self.task)


def _prefill_case(sweep: _Sweep, layer: LlamaLayer, batch: int, seq: int) -> None:
    import torch

    row = sweep.base(layer.dims, "prefill", False, batch, seq, None)
    if sweep.spent(row):
        return  # a skipped prefill case leaves the bar where it is, as it always has
    try:
        x = torch.randn(batch, seq, layer.dims.hidden, device="cuda", dtype=torch.bfloat16)
        cos, sin = layer.rope_tables(torch.arange(seq, device="cuda"))
        sweep.add(row, bench([lambda: layer.prefill(x, cos, sin)], budget_s=sweep.case_budget_s,
                             min_batches=3, nvml=sweep.nvml))
    except Exception as exc:
        sweep.fail(row, "run", exc)
    sweep.advance()


def _decode_case(sweep: _Sweep, layer: LlamaLayer, batch: int, context: int) -> None:
    """The eager decode row, then its CUDA-graph twin from the same step (only if eager ran)."""
    import torch

    dims, case_budget_s, nvml = layer.dims, sweep.case_budget_s, sweep.nvml
    row = sweep.base(dims, "decode", False, batch, None, context)
    if kv_cache_bytes(dims, batch, context) > MAX_KV_BYTES:
        sweep.fail(row, "skipped", ValueError(
            f"KV cache {kv_cache_bytes(dims, batch, context)} bytes > {MAX_KV_BYTES:.0f}"))
    elif not sweep.spent(row):
        step = None
        try:
            step, _, _ = layer.decode_step(batch, context)
            # Eager steps are host-bound, so they vary with the host: a longer warm-up and 4x the
            # batches steady the median (the first eager case of the 2026-11-22 runs read 2x the next).
            sweep.add(row, bench([step], budget_s=4 * case_budget_s, warmup_s=0.05, nvml=nvml))
            grow = sweep.base(dims, "decode", True, batch, None, context)
            try:
                sweep.add(grow, bench_graph([step], budget_s=case_budget_s,
                                            min_calls_per_graph=1, nvml=nvml))
            except Exception as exc:
                sweep.fail(grow, "graph", exc)
        except Exception as exc:
            sweep.fail(row, "run", exc)
        finally:
            step = None  # drop the step (and the KV cache it holds) before emptying the cache
            torch.cuda.empty_cache()
    sweep.advance()


def run_layers(env, nvml, quick: bool = False, progress=None, budget_s: float = 60.0,
               case_budget_s: float | None = None) -> tuple[list[dict], list[dict]]:
    """Time the block for Llama-3-8B and -70B dims; returns (layers.csv rows, failure rows)."""
    import torch

    case_budget_s = case_budget_s or (0.01 if quick else 0.05)
    models = (LLAMA_3_8B,) if quick else (LLAMA_3_8B, LLAMA_3_70B)
    prefill_cases = ((1, 512),) if quick else PREFILL_CASES
    decode_cases = ((8, 1024),) if quick else tuple(
        (b, c) for b in DECODE_BATCHES for c in DECODE_CONTEXTS)
    n_total = len(models) * (len(prefill_cases) + len(decode_cases))
    task = progress.add_task("layers", total=n_total) if progress is not None else None
    sweep = _Sweep(env, nvml, budget_s, case_budget_s, time.perf_counter(), progress, task)
    for dims in models:
        layer = LlamaLayer(dims)
        for batch, seq in prefill_cases:
            _prefill_case(sweep, layer, batch, seq)
        for batch, context in decode_cases:
            _decode_case(sweep, layer, batch, context)
        del layer
        torch.cuda.empty_cache()
    return sweep.rows, sweep.failures
