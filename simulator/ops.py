"""The op graph: every FLOP and byte count of a forward pass lives here, once.

Counting conventions (stated once, used everywhere):
- 2 FLOPs per multiply-add. A GEMM C[m,n] = A[m,k] @ B[k,n] costs 2·m·n·k.
- Attention: QKᵀ and PV are 2·q·kv·d each per head → 4·q·kv·d. Causal prefill counts HALF the score
  matrix (q = kv = S: 2·S²·d per head), the flash-attention benchmark convention.
- Bytes are split by what they are: weights, activations read, activations written, KV read, KV
  written. Each operand crosses HBM once (ideal reuse in L2/SMEM); the calibrated efficiencies absorb
  the re-reads real kernels do.
- KV bytes come only from ``ModelSpec.kv_bytes_per_token`` (per layer: divide by n_layers), so GQA is
  handled identically in KV writes, prefill attention, decode attention, memory and context switching.

Token counts may be Python numbers or numpy arrays (one entry per scenario point): every formula is
plain arithmetic so a sweep evaluates all points at once.

Graph: one decoder layer is a networkx DAG of ops (norm → qkv → rope → kv_write → attention → o_proj →
residual → norm → mlp …), repeated ``n_layers`` times (``n_repeats``), plus model-level ops (embedding,
final norm, LM head). Tensor parallelism divides heads / FFN / vocab by ``tp`` and adds two all-reduces
per layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from hwspecs.schema import DTYPE_BYTES
from workloads.model import ModelSpec

GEMM, ATTN_PREFILL, ATTN_DECODE, ELEMENTWISE, ALLREDUCE, COPY, H2D, D2H = (
    "gemm", "attention_prefill", "attention_decode", "elementwise", "allreduce", "copy", "h2d", "d2h")


@dataclass(frozen=True)
class Op:
    """One kernel of the forward pass (per GPU). Counts are per execution; ``n_repeats`` executions per pass.

    ``shape`` holds what the timing model needs beyond counts: gemm (m, n, k), attention
    (batch, q_tokens, kv_tokens, n_q_heads, n_kv_heads, head_dim, causal), allreduce (n_ranks).
    """

    name: str
    kind: str
    scope: str  # "layer" (repeated per decoder layer) or "model"
    n_repeats: int
    flops: Any
    weight_bytes: Any = 0.0
    act_read_bytes: Any = 0.0
    act_write_bytes: Any = 0.0
    kv_read_bytes: Any = 0.0
    kv_write_bytes: Any = 0.0
    compute_dtype: str = "bf16"
    shape: dict = field(default_factory=dict)

    @property
    def hbm_bytes(self):
        return (self.weight_bytes + self.act_read_bytes + self.act_write_bytes + self.kv_read_bytes
                + self.kv_write_bytes)


# ---- single-op builders (one formula each) ------------------------------------------------------------

def gemm_op(name, m, n, k, *, weight_dtype="bf16", act_dtype="bf16", bias=False, scope="layer",
            n_repeats=1, weights_are_operand=True, n_weight_matrices=1) -> Op:
    """C[m,n] = A[m,k] @ W[k,n] (+ bias). A is activations, W weights (or a second activation if
    ``weights_are_operand`` is False, e.g. a plain kernel benchmark). ``n_weight_matrices`` > 1 for MoE
    (distinct expert matrices streamed)."""
    wb, ab = DTYPE_BYTES[weight_dtype], DTYPE_BYTES[act_dtype]
    w_bytes = n_weight_matrices * (k * n + n * bias) * wb
    return Op(
        name=name, kind=GEMM, scope=scope, n_repeats=n_repeats,
        flops=2.0 * m * n * k,
        weight_bytes=w_bytes if weights_are_operand else 0.0,
        act_read_bytes=m * k * ab + (0.0 if weights_are_operand else w_bytes),
        act_write_bytes=m * n * ab,
        compute_dtype=act_dtype,
        shape={"m": m, "n": n, "k": k},
    )


def attention_flops(batch, q_tokens, kv_tokens, n_q_heads, head_dim, causal):
    """4·B·Hq·q·kv·d, halved for causal (half the score matrix)."""
    full = 4.0 * batch * n_q_heads * q_tokens * kv_tokens * head_dim
    return full * 0.5 if causal else full


def attention_op(name, batch, q_tokens, kv_tokens, n_q_heads, n_kv_heads, head_dim, *, act_dtype="bf16",
                 kv_dtype="bf16", causal=True, scope="layer", n_repeats=1, paged=False) -> Op:
    """Attention of q_tokens new queries per sequence over kv_tokens cached keys/values (one layer).

    Reads Q (B·q·Hq·d) and K,V (B·kv·2·Hkv·d in the KV dtype), writes O (B·q·Hq·d).
    q_tokens == 1 is a decode step (one query token per sequence); otherwise prefill.
    """
    ab, kb = DTYPE_BYTES[act_dtype], DTYPE_BYTES[kv_dtype]
    decode = np.all(np.asarray(q_tokens) == 1)
    return Op(
        name=name, kind=ATTN_DECODE if decode else ATTN_PREFILL, scope=scope, n_repeats=n_repeats,
        flops=attention_flops(batch, q_tokens, kv_tokens, n_q_heads, head_dim, causal and not decode),
        act_read_bytes=batch * q_tokens * n_q_heads * head_dim * ab,
        kv_read_bytes=batch * kv_tokens * 2 * n_kv_heads * head_dim * kb,
        act_write_bytes=batch * q_tokens * n_q_heads * head_dim * ab,
        compute_dtype=act_dtype,
        shape={"batch": batch, "q_tokens": q_tokens, "kv_tokens": kv_tokens, "n_q_heads": n_q_heads,
               "n_kv_heads": n_kv_heads, "head_dim": head_dim, "causal": bool(causal and not decode),
               "paged": bool(paged)},
    )


def elementwise_op(name, n_elements_read, n_elements_written, *, act_dtype="bf16", flops_per_element=1.0,
                   weight_elements=0, weight_dtype="bf16", scope="layer", n_repeats=1,
                   kv_write_bytes=0.0) -> Op:
    ab = DTYPE_BYTES[act_dtype]
    return Op(
        name=name, kind=ELEMENTWISE, scope=scope, n_repeats=n_repeats,
        flops=flops_per_element * n_elements_written,
        weight_bytes=weight_elements * DTYPE_BYTES[weight_dtype],
        act_read_bytes=n_elements_read * ab, act_write_bytes=n_elements_written * ab,
        kv_write_bytes=kv_write_bytes, compute_dtype="fp32",
    )


def allreduce_op(name, n_elements, n_ranks, *, act_dtype="bf16", scope="layer", n_repeats=1) -> Op:
    """Ring all-reduce of n_elements per rank: each rank sends and receives 2·(t-1)/t of the buffer."""
    ab = DTYPE_BYTES[act_dtype]
    return Op(
        name=name, kind=ALLREDUCE, scope=scope, n_repeats=n_repeats, flops=n_elements * (n_ranks - 1.0) / n_ranks,
        act_read_bytes=n_elements * ab, act_write_bytes=n_elements * ab, compute_dtype="fp32",
        shape={"n_ranks": n_ranks, "link_bytes": 2.0 * (n_ranks - 1.0) / n_ranks * n_elements * ab},
    )


def transfer_op(kind, n_bytes, *, pinned=True) -> Op:
    """copy (device→device: reads and writes n_bytes), h2d / d2h (crosses the host link once)."""
    if kind == COPY:
        return Op(name="copy", kind=COPY, scope="model", n_repeats=1, flops=0.0, act_read_bytes=n_bytes,
                  act_write_bytes=n_bytes, compute_dtype="fp32")
    return Op(name=kind, kind=kind, scope="model", n_repeats=1, flops=0.0,
              act_write_bytes=n_bytes if kind == H2D else 0.0, act_read_bytes=n_bytes if kind == D2H else 0.0,
              compute_dtype="fp32", shape={"pinned": bool(pinned), "link_bytes": n_bytes})


# ---- the forward pass ---------------------------------------------------------------------------------

def expected_experts_touched(n_experts, top_k, n_tokens):
    """Distinct experts hit by n_tokens tokens each routed to top_k of n_experts (uniform routing):
    E·(1 − (1 − k/E)^N). Decides how many expert weight matrices a step streams from HBM."""
    return n_experts * (1.0 - (1.0 - top_k / n_experts) ** np.asarray(n_tokens, dtype=float))


def forward_op_list(model: ModelSpec, batch, q_tokens, kv_tokens, *, weight_dtype="bf16", act_dtype="bf16",
                    kv_dtype="bf16", tp: int = 1, lm_head_tokens=None) -> list[Op]:
    """One forward pass over ``batch`` sequences, each adding ``q_tokens`` tokens to a cache that then holds
    ``kv_tokens`` tokens. Prefill: q = kv = S. Decode: q = 1, kv = context. Returns ops in execution order.

    ``lm_head_tokens``: tokens whose logits are computed (default one per sequence: serving engines
    compute logits only for the last prompt token in prefill).
    """
    m = model
    n_tok = batch * q_tokens
    hq = m.n_q_heads // tp if m.n_q_heads >= tp else 1
    hkv = m.kv_heads_per_gpu(tp)
    d = m.head_dim
    ffn = m.ffn_hidden // tp
    h = m.hidden
    L = m.n_layers
    kw = {"weight_dtype": weight_dtype, "act_dtype": act_dtype}
    norm_w = 2 if m.norm == "layernorm" else 1
    # KV bytes of the new tokens for one layer, from the one KV formula.
    kv_layer_bytes_per_token = m.kv_bytes_per_token(kv_dtype, n_kv_heads=hkv) / L

    layer = [
        elementwise_op("attn_norm", n_tok * h, n_tok * h, act_dtype=act_dtype, flops_per_element=4.0,
                       weight_elements=norm_w * h, weight_dtype=weight_dtype, n_repeats=L),
        gemm_op("qkv_proj", n_tok, (hq + 2 * hkv) * d, h, bias=m.qkv_bias, n_repeats=L, **kw),
    ]
    if m.learned_positions == 0:
        layer.append(elementwise_op("rope", n_tok * (hq + hkv) * d, n_tok * (hq + hkv) * d,
                                    act_dtype=act_dtype, flops_per_element=3.0, n_repeats=L))
    layer += [
        elementwise_op("kv_write", n_tok * 2 * hkv * d, 0.0, act_dtype=act_dtype, flops_per_element=0.0,
                       kv_write_bytes=n_tok * kv_layer_bytes_per_token, n_repeats=L),
        attention_op("attention", batch, q_tokens, kv_tokens, hq, hkv, d, act_dtype=act_dtype,
                     kv_dtype=kv_dtype, causal=True, n_repeats=L),
        gemm_op("o_proj", n_tok, h, hq * d, bias=m.out_bias, n_repeats=L, **kw),
    ]
    if tp > 1:
        layer.append(allreduce_op("attn_allreduce", n_tok * h, tp, act_dtype=act_dtype, n_repeats=L))
    layer += [
        elementwise_op("attn_residual", 2 * n_tok * h, n_tok * h, act_dtype=act_dtype, n_repeats=L),
        elementwise_op("mlp_norm", n_tok * h, n_tok * h, act_dtype=act_dtype, flops_per_element=4.0,
                       weight_elements=norm_w * h, weight_dtype=weight_dtype, n_repeats=L),
    ]
    n_up = 2 if m.gated_mlp else 1
    if m.is_moe:
        routed = n_tok * m.top_k  # token-expert pairs
        touched = expected_experts_touched(m.n_experts, m.top_k, n_tok)
        per_expert_m = routed / touched  # tokens per active expert GEMM
        layer += [
            gemm_op("router", n_tok, m.n_experts, h, n_repeats=L, **kw),
            _moe_gemm("experts_gate_up", per_expert_m, n_up * ffn, h, touched, m.out_bias, L, kw),
            elementwise_op("mlp_act", routed * n_up * ffn, routed * ffn, act_dtype=act_dtype,
                           flops_per_element=4.0, n_repeats=L),
            _moe_gemm("experts_down", per_expert_m, h, ffn, touched, m.out_bias, L, kw),
        ]
    else:
        layer += [
            gemm_op("mlp_up" if n_up == 1 else "mlp_gate_up", n_tok, n_up * ffn, h, bias=m.out_bias,
                    n_repeats=L, **kw),
            elementwise_op("mlp_act", n_tok * n_up * ffn, n_tok * ffn, act_dtype=act_dtype,
                           flops_per_element=4.0, n_repeats=L),
            gemm_op("mlp_down", n_tok, h, ffn, bias=m.out_bias, n_repeats=L, **kw),
        ]
    if tp > 1:
        layer.append(allreduce_op("mlp_allreduce", n_tok * h, tp, act_dtype=act_dtype, n_repeats=L))
    layer.append(elementwise_op("mlp_residual", 2 * n_tok * h, n_tok * h, act_dtype=act_dtype, n_repeats=L))

    head_tokens = batch if lm_head_tokens is None else lm_head_tokens
    embed = elementwise_op("embedding", 0.0, n_tok * h, act_dtype=act_dtype, flops_per_element=0.0,
                           weight_elements=n_tok * h * (2 if m.learned_positions else 1),
                           weight_dtype=weight_dtype, scope="model")
    final_norm = elementwise_op("final_norm", head_tokens * h, head_tokens * h, act_dtype=act_dtype,
                                flops_per_element=4.0, weight_elements=norm_w * h, weight_dtype=weight_dtype,
                                scope="model")
    lm_head = gemm_op("lm_head", head_tokens, m.vocab_size // tp, h, scope="model", **kw)

    return [embed, *layer, final_norm, lm_head]


def forward_ops(model: ModelSpec, batch, q_tokens, kv_tokens, **kw) -> nx.DiGraph:
    """The forward pass as a DAG (node attribute ``op``): the layer chain plus residual edges.
    Same arguments as ``forward_op_list`` (whose order is a topological order of this graph)."""
    chain = forward_op_list(model, batch, q_tokens, kv_tokens, **kw)
    g = nx.DiGraph()
    for op in chain:
        g.add_node(op.name, op=op)
    for a, b in zip(chain, chain[1:]):
        g.add_edge(a.name, b.name)
    # Residual connections are real data dependencies too (the DAG is not just a chain).
    g.add_edge("embedding", "attn_residual")
    g.add_edge("attn_residual", "mlp_residual")
    return g


def _moe_gemm(name, per_expert_m, n, k, touched, bias, n_repeats, kw) -> Op:
    """Grouped expert GEMM: ``touched`` experts each see ``per_expert_m`` tokens; FLOPs of all of them,
    weights of each touched expert streamed once."""
    one = gemm_op(name, per_expert_m, n, k, bias=bias, n_repeats=n_repeats, n_weight_matrices=touched, **kw)
    return Op(name=name, kind=GEMM, scope="layer", n_repeats=n_repeats, flops=one.flops * touched,
              weight_bytes=one.weight_bytes, act_read_bytes=one.act_read_bytes * touched,
              act_write_bytes=one.act_write_bytes * touched, compute_dtype=one.compute_dtype,
              shape={"m": per_expert_m, "n": n, "k": k, "groups": touched})
