"""Independent torch modules of today's model families, used only by tests to count parameters on the
``meta`` device: DeepSeek-V3 multi-head latent attention and shared-expert MoE (after
modeling_deepseek.py), gpt-oss attention sinks and biased fused experts (after modeling_gpt_oss.py),
Qwen3 / Gemma 3 q/k norms and Gemma's four norms per layer. Built layer by layer from a ModelSpec's
layer groups; no hwperf formula is used."""

from __future__ import annotations

import torch
from torch import nn


class MLAttention(nn.Module):
    """DeepseekV3Attention: q_a_proj → q_a_layernorm → q_b_proj; kv_a_proj_with_mqa → kv_a_layernorm →
    kv_b_proj; o_proj."""

    def __init__(self, a, hidden):
        super().__init__()
        qk = a.qk_nope_head_dim + a.qk_rope_head_dim
        if a.q_lora_rank:
            self.q_a_proj = nn.Linear(hidden, a.q_lora_rank, bias=False)
            self.q_a_layernorm = nn.RMSNorm(a.q_lora_rank)
            self.q_b_proj = nn.Linear(a.q_lora_rank, a.n_q_heads * qk, bias=False)
        else:
            self.q_proj = nn.Linear(hidden, a.n_q_heads * qk, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(hidden, a.kv_lora_rank + a.qk_rope_head_dim, bias=False)
        self.kv_a_layernorm = nn.RMSNorm(a.kv_lora_rank)
        self.kv_b_proj = nn.Linear(a.kv_lora_rank, a.n_q_heads * (a.qk_nope_head_dim + a.v_head_dim), bias=False)
        self.o_proj = nn.Linear(a.n_q_heads * a.v_head_dim, hidden, bias=False)


class GQAttention(nn.Module):
    def __init__(self, a, hidden):
        super().__init__()
        hkv = a.n_kv_heads or a.n_q_heads
        self.q_proj = nn.Linear(hidden, a.n_q_heads * a.head_dim, bias=a.qkv_bias)
        self.k_proj = nn.Linear(hidden, hkv * a.head_dim, bias=a.qkv_bias)
        self.v_proj = nn.Linear(hidden, hkv * a.head_dim, bias=a.qkv_bias)
        self.o_proj = nn.Linear(a.n_q_heads * a.head_dim, hidden, bias=a.out_bias)
        if a.qk_norm:
            self.q_norm, self.k_norm = nn.RMSNorm(a.head_dim), nn.RMSNorm(a.head_dim)
        if a.sinks:
            self.sinks = nn.Parameter(torch.empty(a.n_q_heads))


class GatedMLP(nn.Module):
    def __init__(self, hidden, width, gated=True, bias=False):
        super().__init__()
        if gated:
            self.gate_proj = nn.Linear(hidden, width, bias=bias)
        self.up_proj = nn.Linear(hidden, width, bias=bias)
        self.down_proj = nn.Linear(width, hidden, bias=bias)


class MoE(nn.Module):
    """Router (+ bias / score-correction bias), routed experts, shared experts."""

    def __init__(self, mlp, hidden):
        super().__init__()
        self.gate = nn.Linear(hidden, mlp.n_experts, bias=False)
        if mlp.router_bias:
            self.e_score_correction_bias = nn.Parameter(torch.empty(mlp.n_experts))
        self.experts = nn.ModuleList(GatedMLP(hidden, mlp.ffn_hidden, mlp.gated, mlp.bias)
                                     for _ in range(mlp.n_experts))
        if mlp.n_shared_experts:
            width = (mlp.shared_ffn_hidden or mlp.ffn_hidden) * mlp.n_shared_experts
            self.shared_experts = GatedMLP(hidden, width, mlp.gated, mlp.bias)


class FusedExperts(nn.Module):
    """gpt-oss GptOssExperts: fused gate_up [E, h, 2f] and down [E, f, h] tensors with biases."""

    def __init__(self, mlp, hidden):
        super().__init__()
        e, f = mlp.n_experts, mlp.ffn_hidden
        self.router = nn.Linear(hidden, e, bias=mlp.router_bias)
        self.gate_up_proj = nn.Parameter(torch.empty(e, hidden, 2 * f))
        self.gate_up_proj_bias = nn.Parameter(torch.empty(e, 2 * f))
        self.down_proj = nn.Parameter(torch.empty(e, f, hidden))
        self.down_proj_bias = nn.Parameter(torch.empty(e, hidden))


class Layer(nn.Module):
    def __init__(self, m, g):
        super().__init__()
        h = m.hidden
        n_norms = 4 if m.sandwich_norm else 2
        self.norms = nn.ModuleList(nn.RMSNorm(h) for _ in range(n_norms))
        self.attn = MLAttention(g.attention, h) if g.attention.kind == "mla" else GQAttention(g.attention, h)
        if not g.mlp.is_moe:
            self.mlp = GatedMLP(h, g.mlp.ffn_hidden, g.mlp.gated, g.mlp.bias)
        elif g.mlp.bias:  # gpt-oss style
            self.mlp = FusedExperts(g.mlp, h)
        else:
            self.mlp = MoE(g.mlp, h)


def count_params_meta(m) -> int:
    """Parameters of the whole decoder, built on the meta device: embedding, final norm, LM head (unless
    tied), plus each group's layer built once and counted ``n_layers`` times (DeepSeek-V3 would
    otherwise build 15k expert modules)."""
    def count(mod):
        return sum(p.numel() for p in mod.parameters())
    with torch.device("meta"):
        embed = nn.Embedding(m.vocab_size, m.hidden)
        total = count(embed) + count(nn.RMSNorm(m.hidden))
        total += 0 if m.tied_embeddings else count(nn.Linear(m.hidden, m.vocab_size, bias=False))
        for g in m.groups:
            total += g.n_layers * count(Layer(m, g))
    return total
