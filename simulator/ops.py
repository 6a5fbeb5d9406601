"""The op graph of a forward pass: which ops one decoder layer and the model run, in order.

Every FLOP and byte formula lives in its op kind's module (``simulator.kinds``): GEMM, attention,
elementwise, copies, host transfers, collectives. Counting conventions: 2 FLOPs per multiply-add; causal
attention counts half the score matrix; bytes split into weights / activations read / activations
written / KV read / KV written, each operand crossing HBM once (the calibrated efficiencies absorb the
re-reads real kernels do). KV bytes come only from ``ModelSpec.kv_bytes_per_token`` (per layer: divide
by n_layers), so GQA is handled identically in KV writes, attention, memory and context switching.

Token counts may be Python numbers or numpy arrays (one entry per scenario point): every formula is
plain arithmetic so a sweep evaluates all points at once.

Graph: one decoder layer is a networkx DAG of ops (norm → qkv → rope → kv_write → attention → o_proj →
residual → norm → mlp …), repeated ``n_layers`` times (``n_repeats``), plus model-level ops (embedding,
final norm, LM head). Tensor parallelism divides heads / FFN / vocab by ``tp`` and adds two all-reduces
per layer.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from simulator.kinds.attention_prefill import attention_op, flops as attention_flops
from simulator.kinds.base import Op
from simulator.kinds.collective import allreduce_op
from simulator.kinds.elementwise import elementwise_op
from simulator.kinds.gemm import gemm_op
from workloads.model import ModelSpec

__all__ = ["Op", "attention_flops", "attention_op", "allreduce_op", "elementwise_op", "expected_experts_touched",
           "forward_op_list", "forward_ops", "gemm_op"]


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
    return gemm_op(name, per_expert_m, n, k, bias=bias, n_repeats=n_repeats, n_weight_matrices=touched,
                   groups=touched, **kw)
