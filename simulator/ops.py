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

from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from simulator.kinds.attention_prefill import attention_op, flops as attention_flops
from simulator.kinds.base import Op
from simulator.kinds.collective import allreduce_op
from simulator.kinds.elementwise import elementwise_op
from simulator.kinds.gemm import gemm_op
from simulator.quant import kept_dtype
from workloads.model import ModelSpec

__all__ = ["Op", "attention_flops", "attention_op", "allreduce_op", "elementwise_op", "expected_experts_touched",
           "forward_op_list", "forward_ops", "gemm_op"]


# ---- the forward pass ---------------------------------------------------------------------------------

def expected_experts_touched(n_experts, top_k, n_tokens):
    """Distinct experts hit by n_tokens tokens each routed to top_k of n_experts (uniform routing):
    E·(1 − (1 − k/E)^N). Decides how many expert weight matrices a step streams from HBM."""
    return n_experts * (1.0 - (1.0 - top_k / n_experts) ** np.asarray(n_tokens, dtype=float))


@dataclass(frozen=True)
class _Pass:
    """Per-GPU sizes of one forward pass (heads, FFN and vocab divided by the tensor-parallel degree)."""

    m: ModelSpec
    n_tok: Any  # tokens processed (batch × q_tokens)
    hq: int
    hkv: int
    tp: int
    kw: dict  # weight_dtype, act_dtype
    kv_dtype: str

    @property
    def act(self) -> str:
        return self.kw["act_dtype"]

    def norm(self, name, n_tokens, scope="layer") -> Op:
        n_w = 2 if self.m.norm == "layernorm" else 1
        return elementwise_op(name, n_tokens * self.m.hidden, n_tokens * self.m.hidden, act_dtype=self.act,
                              flops_per_element=4.0, weight_elements=n_w * self.m.hidden,
                              weight_dtype=self.kw["weight_dtype"], scope=scope, n_repeats=self.m.n_layers
                              if scope == "layer" else 1)

    def allreduce(self, name) -> list[Op]:
        if self.tp == 1:
            return []
        return [allreduce_op(name, self.n_tok * self.m.hidden, self.tp, act_dtype=self.act, n_repeats=self.m.n_layers)]

    def residual(self, name) -> Op:
        h = self.m.hidden
        return elementwise_op(name, 2 * self.n_tok * h, self.n_tok * h, act_dtype=self.act, n_repeats=self.m.n_layers)


def _attention_block(p: _Pass, batch, q_tokens, kv_tokens) -> list[Op]:
    """norm → QKV → RoPE → KV write → attention → O projection (→ all-reduce) → residual."""
    m, n_tok, hq, hkv, d, L = p.m, p.n_tok, p.hq, p.hkv, p.m.head_dim, p.m.n_layers
    # KV bytes of the new tokens for one layer, from the one KV formula.
    kv_layer_bytes_per_token = m.kv_bytes_per_token(p.kv_dtype, n_kv_heads=hkv) / L
    ops = [p.norm("attn_norm", n_tok), gemm_op("qkv_proj", n_tok, (hq + 2 * hkv) * d, m.hidden, bias=m.qkv_bias,
                                                n_repeats=L, **p.kw)]
    if m.learned_positions == 0:
        ops.append(elementwise_op("rope", n_tok * (hq + hkv) * d, n_tok * (hq + hkv) * d, act_dtype=p.act,
                                  flops_per_element=3.0, n_repeats=L))
    ops += [
        elementwise_op("kv_write", n_tok * 2 * hkv * d, 0.0, act_dtype=p.act, flops_per_element=0.0,
                       kv_write_bytes=n_tok * kv_layer_bytes_per_token, n_repeats=L),
        attention_op("attention", batch, q_tokens, kv_tokens, hq, hkv, d, act_dtype=p.act, kv_dtype=p.kv_dtype,
                     causal=True, n_repeats=L),
        gemm_op("o_proj", n_tok, m.hidden, hq * d, bias=m.out_bias, n_repeats=L, **p.kw),
    ]
    return ops + p.allreduce("attn_allreduce") + [p.residual("attn_residual")]


def _mlp_block(p: _Pass) -> list[Op]:
    """norm → (router →) up/gate → activation → down (→ all-reduce) → residual; MoE streams the weights
    of the experts its tokens touch."""
    m, n_tok, L, h, act = p.m, p.n_tok, p.m.n_layers, p.m.hidden, p.act
    ffn = m.ffn_hidden // p.tp
    n_up = 2 if m.gated_mlp else 1
    ops = [p.norm("mlp_norm", n_tok)]
    if m.is_moe:
        routed = n_tok * m.top_k  # token-expert pairs
        touched = expected_experts_touched(m.n_experts, m.top_k, n_tok)
        per_expert_m = routed / touched  # tokens per active expert GEMM
        ops += [
            gemm_op("router", n_tok, m.n_experts, h, n_repeats=L, **p.kw),
            _moe_gemm("experts_gate_up", per_expert_m, n_up * ffn, h, touched, m.out_bias, L, p.kw),
            elementwise_op("mlp_act", routed * n_up * ffn, routed * ffn, act_dtype=act, flops_per_element=4.0,
                           n_repeats=L),
            _moe_gemm("experts_down", per_expert_m, h, ffn, touched, m.out_bias, L, p.kw),
        ]
    else:
        ops += [
            gemm_op("mlp_up" if n_up == 1 else "mlp_gate_up", n_tok, n_up * ffn, h, bias=m.out_bias, n_repeats=L,
                    **p.kw),
            elementwise_op("mlp_act", n_tok * n_up * ffn, n_tok * ffn, act_dtype=act, flops_per_element=4.0,
                           n_repeats=L),
            gemm_op("mlp_down", n_tok, h, ffn, bias=m.out_bias, n_repeats=L, **p.kw),
        ]
    return ops + p.allreduce("mlp_allreduce") + [p.residual("mlp_residual")]


def forward_op_list(model: ModelSpec, batch, q_tokens, kv_tokens, *, weight_dtype="bf16", act_dtype="bf16",
                    kv_dtype="bf16", tp: int = 1, lm_head_tokens=None) -> list[Op]:
    """One forward pass over ``batch`` sequences, each adding ``q_tokens`` tokens to a cache that then holds
    ``kv_tokens`` tokens. Prefill: q = kv = S. Decode: q = 1, kv = context. Returns ops in execution order.

    ``lm_head_tokens``: tokens whose logits are computed (default one per sequence: serving engines
    compute logits only for the last prompt token in prefill).
    """
    m = model
    hq = m.n_q_heads // tp if m.n_q_heads >= tp else 1
    p = _Pass(m, batch * q_tokens, hq, m.kv_heads_per_gpu(tp), tp,
              {"weight_dtype": weight_dtype, "act_dtype": act_dtype}, kv_dtype)
    head_tokens = batch if lm_head_tokens is None else lm_head_tokens
    embed = elementwise_op("embedding", 0.0, p.n_tok * m.hidden, act_dtype=act_dtype, flops_per_element=0.0,
                           weight_elements=p.n_tok * m.hidden * (2 if m.learned_positions else 1),
                           weight_dtype=kept_dtype(weight_dtype), scope="model")
    return [embed, *_attention_block(p, batch, q_tokens, kv_tokens), *_mlp_block(p),
            p.norm("final_norm", head_tokens, scope="model"),
            gemm_op("lm_head", head_tokens, m.vocab_size // tp, m.hidden, scope="model",
                    **{**p.kw, "weight_dtype": kept_dtype(weight_dtype)})]  # stays 16-bit: simulator.quant


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
