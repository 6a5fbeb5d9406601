"""Op builders of one decoder layer's blocks (per GPU): attention (GQA/MQA/MHA, MLA, sliding window) and
MLP (dense, MoE with shared experts). ``simulator.ops`` assembles them into the forward pass; the FLOP and
byte formulas themselves live in the op kinds (``simulator.kinds``).

MLA (arXiv 2405.04434 §2.1, DeepSeek-V3 inference as in vLLM/SGLang/FlashMLA):
- prefill (not absorbed): the latent cache is up-projected by ``kv_b_proj`` into per-head K (nope dims,
  plus the shared RoPE key) and V for every key token, then ordinary multi-head attention with
  d_qk = nope + rope and d_v = v_head_dim reads the materialised K/V (activation dtype);
- decode (absorbed): W_UK is folded into the query (``q_absorb``: per head nope → kv_lora_rank) and W_UV
  into the output (``v_absorb``: kv_lora_rank → v_head_dim); attention then runs as MQA over the latent
  cache: one shared "head" of kv_lora_rank + rope dims for K, its first kv_lora_rank dims as V.
Both read kv_b_proj's weights once per pass; the latent projections q_a/kv_a are replicated under tensor
parallelism (vLLM ReplicatedLinear), the per-head ones split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hwspecs.schema import DTYPE_BYTES
from simulator.kinds.attention_prefill import attention_op
from simulator.kinds.base import Op
from simulator.kinds.collective import ALL_TO_ALL, allreduce_op, collective_op
from simulator.quant import stream_dtype
from simulator.kinds.elementwise import elementwise_op
from simulator.kinds.gemm import gemm_op
from workloads.blocks import AttentionSpec, LayerGroup, MLPSpec
from workloads.model import ModelSpec


def expected_experts_touched(n_experts, top_k, n_tokens, imbalance=1.0):
    """Distinct experts hit by n_tokens tokens each routed to top_k of n_experts: E·(1 − (1 − k/E)^N) under
    uniform routing. ``imbalance`` f ≥ 1 concentrates routing on a hot set of E/f experts (at least k):
    E'·(1 − (1 − k/E')^N) — k at one token, E/f (not E) at many. Decides how many expert weight
    matrices a step streams from HBM."""
    hot = np.maximum(n_experts / imbalance, top_k)
    return hot * (1.0 - (1.0 - top_k / hot) ** np.asarray(n_tokens, dtype=float))


@dataclass(frozen=True)
class Pass:
    """Per-GPU sizes of one layer group in one forward pass (heads, FFN and vocab divided by ``tp``)."""

    m: ModelSpec
    g: LayerGroup
    n_tok: Any  # tokens processed (batch × q_tokens)
    tp: int
    kw: dict  # weight_dtype, act_dtype
    kv_dtype: str
    prefix: str = ""  # "<group>." when the model has several groups
    imbalance: float = 1.0
    # Expert parallelism (workloads.parallel): routed experts split over ``ep`` GPUs, each expert's FFN over
    # ``expert_split`` GPUs; ``moe_tokens`` tokens of the whole stage reach the routed experts; with
    # ``dispatch`` an all-to-all carries them there and back (data-parallel attention).
    ep: int = 1
    expert_split: int = 0  # 0: = tp
    moe_tokens: Any = None  # None: = n_tok
    dispatch: bool = False
    tp_link: dict | None = None  # the tensor-parallel group's link (simulator.parallel.group_link)
    ep_link: dict | None = None  # the expert-parallel group's link

    @property
    def act(self) -> str:
        """Activations outside the GEMMs (``simulator.quant.stream_dtype``); GEMMs take ``kw["act_dtype"]``."""
        return stream_dtype(self.kw["act_dtype"])

    @property
    def L(self) -> int:
        return self.g.n_layers

    @property
    def hq(self) -> int:
        n = self.g.attention.n_q_heads
        return n // self.tp if n >= self.tp else 1

    def name(self, op: str) -> str:
        return self.prefix + op

    def gemm(self, op, m, n, k, bias=False, **extra) -> Op:
        return gemm_op(self.name(op), m, n, k, bias=bias, n_repeats=self.L, **self.kw, **extra)

    def eltwise(self, op, n_read, n_written, flops_per_element=1.0, **extra) -> Op:
        return elementwise_op(self.name(op), n_read, n_written, act_dtype=self.act,
                              flops_per_element=flops_per_element, n_repeats=self.L, **extra)

    def norm(self, op, width=None) -> Op:
        w = self.m.hidden if width is None else width
        n_w = 2 if self.m.norm == "layernorm" else 1
        return self.eltwise(op, self.n_tok * w, self.n_tok * w, 4.0, weight_elements=n_w * w,
                            weight_dtype=self.kw["weight_dtype"])

    def allreduce(self, op) -> list[Op]:
        if self.tp == 1:
            return []
        return [allreduce_op(self.name(op), self.n_tok * self.m.hidden, self.tp, act_dtype=self.act, n_repeats=self.L,
                             link=self.tp_link)]

    def residual(self, op) -> Op:
        h = self.m.hidden
        return self.eltwise(op, 2 * self.n_tok * h, self.n_tok * h)

    def kv_write(self, elements_per_token) -> Op:
        """New tokens' KV for one layer: ``AttentionSpec.kv_elements_per_token`` elements each."""
        n = self.n_tok * elements_per_token
        return self.eltwise("kv_write", n, 0.0, 0.0, kv_write_bytes=n * DTYPE_BYTES[self.kv_dtype])


def _gqa_ops(p: Pass, batch, q_tokens, kv_tokens) -> list[Op]:
    """QKV → (q/k norm) → RoPE → KV write → attention → O projection."""
    a: AttentionSpec = p.g.attention
    hq, hkv, d, n_tok = p.hq, -(-a.kv_heads // p.tp), a.head_dim, p.n_tok
    ops = [p.gemm("qkv_proj", n_tok, (hq + 2 * hkv) * d, p.m.hidden, bias=a.qkv_bias)]
    if a.qk_norm:
        ops.append(p.eltwise("qk_norm", n_tok * (hq + hkv) * d, n_tok * (hq + hkv) * d, 4.0,
                             weight_elements=2 * d, weight_dtype=p.kw["weight_dtype"]))
    if p.m.learned_positions == 0:
        ops.append(p.eltwise("rope", n_tok * (hq + hkv) * d, n_tok * (hq + hkv) * d, 3.0))
    extra = {} if a.window_tokens is None else {"window": a.window_tokens}
    return ops + [
        p.kv_write(a.kv_elements_per_token(p.tp)),
        attention_op(p.name("attention"), batch, q_tokens, kv_tokens, hq, hkv, d, act_dtype=p.act,
                     kv_dtype=p.kv_dtype, causal=True, n_repeats=p.L, **extra),
        p.gemm("o_proj", n_tok, p.m.hidden, hq * d, bias=a.out_bias),
    ]


def _mla_ops(p: Pass, batch, q_tokens, kv_tokens) -> list[Op]:
    """Latent projections → (absorbed) attention → O projection; see the module docstring."""
    a: AttentionSpec = p.g.attention
    hq, n_tok, h = p.hq, p.n_tok, p.m.hidden
    nope, rope, lora, dv = a.qk_nope_head_dim, a.qk_rope_head_dim, a.kv_lora_rank, a.v_head_dim
    if a.q_lora_rank:
        ops = [p.gemm("q_a_proj", n_tok, a.q_lora_rank, h), p.norm("q_a_norm", a.q_lora_rank),
               p.gemm("q_b_proj", n_tok, hq * (nope + rope), a.q_lora_rank)]
    else:
        ops = [p.gemm("q_proj", n_tok, hq * (nope + rope), h)]
    ops += [p.gemm("kv_a_proj", n_tok, lora + rope, h), p.norm("kv_a_norm", lora),
            p.eltwise("rope", n_tok * (hq + 1) * rope, n_tok * (hq + 1) * rope, 3.0),
            p.kv_write(a.kv_elements_per_token(p.tp))]
    window = {} if a.window_tokens is None else {"window": a.window_tokens}
    absorbed = bool(np.all(np.asarray(q_tokens) == 1))
    if absorbed:
        ops += [p.gemm("q_absorb", n_tok, lora, nope, groups=hq, n_weight_matrices=hq),
                attention_op(p.name("attention"), batch, q_tokens, kv_tokens, hq, 1, lora + rope, act_dtype=p.act,
                             kv_dtype=p.kv_dtype, n_repeats=p.L, v_head_dim=lora, kv_elements=lora + rope, **window),
                p.gemm("v_absorb", n_tok, dv, lora, groups=hq, n_weight_matrices=hq)]
    else:
        ops += [p.gemm("kv_b_proj", batch * kv_tokens, hq * (nope + dv), lora),
                attention_op(p.name("attention"), batch, q_tokens, kv_tokens, hq, hq, nope + rope, act_dtype=p.act,
                             kv_dtype=p.act, causal=True, n_repeats=p.L, v_head_dim=dv,
                             kv_elements=hq * (nope + rope + dv), **window)]
    return ops + [p.gemm("o_proj", n_tok, h, hq * dv)]


def attention_block(p: Pass, batch, q_tokens, kv_tokens) -> list[Op]:
    """norm → attention ops (GQA or MLA) → (all-reduce) → (post-norm) → residual."""
    build = _mla_ops if p.g.attention.kind == "mla" else _gqa_ops
    post = [p.norm("attn_post_norm")] if p.m.sandwich_norm else []
    return [p.norm("attn_norm"), *build(p, batch, q_tokens, kv_tokens), *p.allreduce("attn_allreduce"), *post,
            p.residual("attn_residual")]


def _dense_mlp(p: Pass, prefix: str, width: int) -> list[Op]:
    n_tok, h, mlp = p.n_tok, p.m.hidden, p.g.mlp
    n_up = 2 if mlp.gated else 1
    up = prefix + ("up" if n_up == 1 else "gate_up")
    return [p.gemm(up, n_tok, n_up * width, h, bias=mlp.bias),
            p.eltwise(prefix + "act", n_tok * n_up * width, n_tok * width, 4.0),
            p.gemm(prefix + "down", n_tok, h, width, bias=mlp.bias)]


def _moe_mlp(p: Pass) -> list[Op]:
    """Router → (all-to-all dispatch) → grouped GEMMs over this GPU's experts that the tokens touch →
    (all-to-all combine) (→ shared experts). Under expert parallelism a GPU holds E/ep experts and receives
    N·k/ep of the stage's N·k token-expert pairs; it touches E/ep·(1 − (1 − k/E)^N) of its experts."""
    mlp: MLPSpec = p.g.mlp
    n_tok, h, ffn = p.n_tok, p.m.hidden, mlp.ffn_hidden // (p.expert_split or p.tp)
    n_up = 2 if mlp.gated else 1
    stage_tokens = n_tok if p.moe_tokens is None else p.moe_tokens
    routed = stage_tokens * mlp.top_k / p.ep  # token-expert pairs on this GPU
    touched = expected_experts_touched(mlp.n_experts, mlp.top_k, stage_tokens, p.imbalance) / p.ep
    per_expert_m = routed / touched  # tokens per active expert GEMM
    ops = [p.gemm("router", n_tok, mlp.n_experts, h)]
    if p.dispatch:  # each GPU sends its share of the stage's tokens × top-k hidden states, and gets them back
        ops.append(_all_to_all(p, "moe_dispatch", stage_tokens / p.ep * mlp.top_k * h))
    ops += [p.gemm("experts_gate_up", per_expert_m, n_up * ffn, h, bias=mlp.bias, n_weight_matrices=touched,
                   groups=touched),
            p.eltwise("mlp_act", routed * n_up * ffn, routed * ffn, 4.0),
            p.gemm("experts_down", per_expert_m, h, ffn, bias=mlp.bias, n_weight_matrices=touched, groups=touched)]
    if p.dispatch:
        ops.append(_all_to_all(p, "moe_combine", stage_tokens / p.ep * mlp.top_k * h))
    if mlp.n_shared_experts:
        ops += _dense_mlp(p, "shared_", mlp.n_shared_experts * mlp.shared_width // p.tp)
    return ops


def _all_to_all(p: Pass, op: str, n_elements) -> Op:
    return collective_op(ALL_TO_ALL, p.name(op), n_elements, p.ep, act_dtype=p.act, n_repeats=p.L, link=p.ep_link)


def mlp_block(p: Pass) -> list[Op]:
    """norm → MLP (dense or MoE) → (all-reduce) → (post-norm) → residual."""
    body = _moe_mlp(p) if p.g.mlp.is_moe else _dense_mlp(p, "mlp_", p.g.mlp.ffn_hidden // p.tp)
    post = [p.norm("mlp_post_norm")] if p.m.sandwich_norm else []
    return [p.norm("mlp_norm"), *body, *p.allreduce("mlp_allreduce"), *post, p.residual("mlp_residual")]
