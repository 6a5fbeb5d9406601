"""Independent torch implementations used only by tests: a decoder model built from nn.Modules
(Llama/Mistral/Qwen2/Yi style, OPT style, Mixtral MoE) so parameter counts and FLOPs can be counted
by torch itself (meta device, FlopCounterMode) rather than by hwperf's own formulas."""

from __future__ import annotations

import torch
from torch import nn


class Attention(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m
        self.q = nn.Linear(m.hidden, m.n_q_heads * m.head_dim, bias=m.qkv_bias)
        self.k = nn.Linear(m.hidden, m.n_kv_heads * m.head_dim, bias=m.qkv_bias)
        self.v = nn.Linear(m.hidden, m.n_kv_heads * m.head_dim, bias=m.qkv_bias)
        self.o = nn.Linear(m.n_q_heads * m.head_dim, m.hidden, bias=m.out_bias)

    def forward(self, x, causal):
        b, s, _ = x.shape
        m = self.m
        q = self.q(x).view(b, s, m.n_q_heads, m.head_dim).transpose(1, 2)
        k = self.k(x).view(b, s, m.n_kv_heads, m.head_dim).transpose(1, 2)
        v = self.v(x).view(b, s, m.n_kv_heads, m.head_dim).transpose(1, 2)
        rep = m.n_q_heads // m.n_kv_heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        o = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.o(o.transpose(1, 2).reshape(b, s, -1))


class MLP(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.gated = m.gated_mlp
        if m.gated_mlp:
            self.gate = nn.Linear(m.hidden, m.ffn_hidden, bias=m.out_bias)
        self.up = nn.Linear(m.hidden, m.ffn_hidden, bias=m.out_bias)
        self.down = nn.Linear(m.ffn_hidden, m.hidden, bias=m.out_bias)

    def forward(self, x):
        h = torch.nn.functional.silu(self.gate(x)) * self.up(x) if self.gated else torch.relu(self.up(x))
        return self.down(h)


class MoE(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.router = nn.Linear(m.hidden, m.n_experts, bias=False)
        self.experts = nn.ModuleList(MLP(m) for _ in range(m.n_experts))

    def forward(self, x):
        return sum(e(x) for e in self.experts)  # only used for parameter counting


def _norm(m):
    return nn.LayerNorm(m.hidden) if m.norm == "layernorm" else nn.RMSNorm(m.hidden)


class Block(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.n1, self.n2 = _norm(m), _norm(m)
        self.attn = Attention(m)
        self.mlp = MoE(m) if m.n_experts > 1 else MLP(m)

    def forward(self, x, causal=True):
        x = x + self.attn(self.n1(x), causal)
        return x + self.mlp(self.n2(x))


class Decoder(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.embed = nn.Embedding(m.vocab_size, m.hidden)
        self.pos = nn.Embedding(m.learned_positions, m.hidden) if m.learned_positions else None
        self.layers = nn.ModuleList(Block(m) for _ in range(m.n_layers))
        self.norm = _norm(m)
        self.lm_head = nn.Linear(m.hidden, m.vocab_size, bias=False)
        if m.tied_embeddings:
            self.lm_head.weight = self.embed.weight


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())  # shared (tied) tensors are yielded once
