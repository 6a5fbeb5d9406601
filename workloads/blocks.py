"""The typed blocks a model is made of: an attention block, an MLP block, and a layer group that repeats
one of each ``n_layers`` times. A model is a sequence of layer groups (``ModelSpec.groups``), so hybrid
stacks — DeepSeek-V3's 3 dense then 58 MoE layers, Gemma 3's 5 local : 1 global, gpt-oss's alternating
sliding/full attention — are written as data (GenZ-style layer-type periods; see the presets).

Attention kinds:
- ``gqa``: multi-head / grouped-query / multi-query attention (n_kv_heads = n_q_heads / between / 1), KV
  cache 2·n_kv_heads·head_dim elements per token per layer.
- ``mla``: multi-head latent attention (DeepSeek-V2/V3, arXiv 2405.04434 §2.1): the cache holds one
  compressed latent of ``kv_lora_rank`` plus a decoupled RoPE key of ``qk_rope_head_dim`` per token per
  layer, shared by all heads. Prefill up-projects the latent into per-head K (nope + rope dims) and V;
  decode absorbs the up-projections into the query and output (attention runs in the latent space).
``window_tokens`` (either kind): sliding-window attention — a query sees at most the last W keys, and a
serving engine keeps at most W tokens of that layer's KV.

All sizes are element counts. Parameter formulas here are checked against torch modules built on the
``meta`` device (tests/test_models_families.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AttentionSpec(BaseModel):
    """One attention block (per layer)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["gqa", "mla"] = "gqa"
    n_q_heads: int = Field(gt=0)
    n_kv_heads: int = Field(default=0, ge=0, description="gqa: KV heads (0: = n_q_heads); mla: unused")
    head_dim: int = Field(default=0, ge=0, description="gqa: per-head dim; mla: derived (nope + rope)")
    window_tokens: int | None = Field(default=None, gt=0, description="sliding window; None = full attention")
    qkv_bias: bool = False
    out_bias: bool = False
    qk_norm: bool = Field(default=False, description="RMSNorm of head_dim on q and k (Qwen3, Gemma 3)")
    sinks: bool = Field(default=False, description="one learned attention-sink logit per q head (gpt-oss)")
    # MLA (arXiv 2405.04434): ranks of the low-rank query/KV compressions and the per-head dims.
    q_lora_rank: int = Field(default=0, ge=0, description="mla: query latent (0: full-rank query projection)")
    kv_lora_rank: int = Field(default=0, ge=0)
    qk_nope_head_dim: int = Field(default=0, ge=0)
    qk_rope_head_dim: int = Field(default=0, ge=0)
    v_head_dim: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _consistent(self):
        if self.kind == "mla":
            missing = [f for f in ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
                       if getattr(self, f) == 0]
            if missing:
                raise ValueError(f"mla attention needs {', '.join(missing)} > 0")
            return self
        if self.head_dim == 0:
            raise ValueError("gqa attention needs head_dim > 0")
        hkv = self.n_kv_heads or self.n_q_heads
        if self.n_q_heads % hkv:
            raise ValueError(f"n_q_heads ({self.n_q_heads}) must be a multiple of n_kv_heads ({hkv})")
        return self

    @property
    def kv_heads(self) -> int:
        """KV heads as stored: gqa's n_kv_heads; 1 for mla (one latent shared by all heads)."""
        return 1 if self.kind == "mla" else (self.n_kv_heads or self.n_q_heads)

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim if self.kind == "mla" else self.head_dim

    @property
    def out_head_dim(self) -> int:
        return self.v_head_dim if self.kind == "mla" else self.head_dim

    def kv_elements_per_token(self, tensor_parallel: int = 1) -> int:
        """KV-cache elements one token adds to ONE layer of this block on one GPU — the single per-token KV
        rule (memory, KV writes, attention reads, context switching and KV compression all go through it).
        gqa: K and V of the GPU's KV heads, 2·ceil(Hkv/t)·d (heads are replicated when fewer than ranks);
        mla: latent + RoPE key, kv_lora_rank + qk_rope_head_dim, replicated on every tensor-parallel rank
        (DeepSeek-V3: 512 + 64 = 576)."""
        if self.kind == "mla":
            return self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * -(-self.kv_heads // tensor_parallel) * self.head_dim

    def params_with_hidden(self, hidden: int) -> int:
        """Weights (and biases, norms, sinks) of this block for a model of width ``hidden``."""
        h_q, d_qk, d_o = self.n_q_heads, self.qk_head_dim, self.out_head_dim
        extra = 2 * d_qk * self.qk_norm + h_q * self.sinks
        n = extra + h_q * d_o * hidden + hidden * self.out_bias  # + output projection
        if self.kind == "mla":
            q = (hidden * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * h_q * d_qk
                 if self.q_lora_rank else hidden * h_q * d_qk)
            kv_a = hidden * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank  # + latent norm
            kv_b = self.kv_lora_rank * h_q * (self.qk_nope_head_dim + self.v_head_dim)
            return n + q + kv_a + kv_b
        qkv_out = (h_q + 2 * self.kv_heads) * self.head_dim
        return n + hidden * qkv_out + qkv_out * self.qkv_bias


class MLPSpec(BaseModel):
    """One MLP block (per layer): dense (n_experts = 1) or mixture-of-experts.

    MoE: a router of hidden × n_experts (+ a per-expert bias or score-correction term with
    ``router_bias``), ``n_experts`` routed experts of width ``ffn_hidden`` each, ``top_k`` per token, and
    ``n_shared_experts`` always-on experts of width ``shared_ffn_hidden`` (default ``ffn_hidden``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ffn_hidden: int = Field(gt=0, description="per expert for MoE")
    gated: bool = True
    bias: bool = False
    n_experts: int = Field(default=1, gt=0)
    top_k: int = Field(default=1, gt=0)
    n_shared_experts: int = Field(default=0, ge=0)
    shared_ffn_hidden: int | None = Field(default=None, gt=0)
    router_bias: bool = False

    @model_validator(mode="after")
    def _consistent(self):
        if self.top_k > self.n_experts:
            raise ValueError(f"top_k ({self.top_k}) must be ≤ n_experts ({self.n_experts})")
        return self

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 1

    @property
    def shared_width(self) -> int:
        return self.shared_ffn_hidden or self.ffn_hidden

    def expert_params(self, hidden: int, width: int | None = None) -> int:
        """One gated (gate + up, then down) or ungated (up, then down) MLP of ``width`` (default ffn_hidden)."""
        f = width or self.ffn_hidden
        n_in = 2 if self.gated else 1
        return n_in * hidden * f + n_in * f * self.bias + f * hidden + hidden * self.bias

    def params_with_hidden(self, hidden: int) -> int:
        router = (hidden * self.n_experts + self.n_experts * self.router_bias) if self.is_moe else 0
        shared = self.n_shared_experts * self.expert_params(hidden, self.shared_width)
        return router + self.n_experts * self.expert_params(hidden) + shared


class LayerGroup(BaseModel):
    """``n_layers`` consecutive decoder layers of identical shape (one attention + one MLP block each).
    ``name`` labels the group's ops (``<name>.attention``) when a model has more than one group."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="layers", pattern=r"^[a-z0-9_]+$")
    n_layers: int = Field(gt=0)
    attention: AttentionSpec
    mlp: MLPSpec
