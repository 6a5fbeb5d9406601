"""Model architectures: a frozen ``ModelSpec`` per transformer, with parameter and KV-cache accounting.

Covers dense decoder-only models (Llama/Mistral/Yi/Qwen2 style: RMSNorm, RoPE, gated SiLU MLP, GQA),
OPT style (LayerNorm with bias, learned positions, biased linears, ReLU MLP, tied embeddings) and
MoE (Mixtral: n_experts gated MLPs per layer, top_k routed per token) with the flat fields below: one
uniform layer repeated ``n_layers`` times. Today's families (MLA, sliding windows, shared experts, dense
then MoE layers) list ``layer_groups`` instead (``workloads.blocks``); the flat head/FFN fields are then
filled from the groups (the widest attention and MLP) for the faces that show one number. Every count
(parameters, KV per token) goes through ``groups``, so both forms share one formula.

Parameter counts here are checked against a torch module built on the ``meta`` device (tests).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hwspecs.schema import DTYPE_BYTES, Dtype
from workloads.blocks import AttentionSpec, LayerGroup, MLPSpec


class ModelSpec(BaseModel):
    """One transformer architecture. All sizes are element counts (not bytes)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    name: str
    n_layers: int = Field(gt=0)
    hidden: int = Field(gt=0)
    n_q_heads: int = Field(gt=0)
    n_kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    ffn_hidden: int = Field(gt=0, description="per expert for MoE")
    gated_mlp: bool = True
    activation: Literal["silu", "relu", "gelu"] = "silu"
    vocab_size: int = Field(gt=0)
    tied_embeddings: bool = False
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    qkv_bias: bool = False
    out_bias: bool = Field(default=False, description="bias on the attention output and MLP linears")
    learned_positions: int = Field(default=0, ge=0, description="rows of a learned position table (OPT); 0 for RoPE")
    n_experts: int = Field(default=1, gt=0)
    top_k: int = Field(default=1, gt=0)
    max_context_tokens: int = Field(default=4096, gt=0)
    sandwich_norm: bool = Field(default=False, description="norms after attention and MLP too (Gemma 2/3)")
    layer_groups: tuple[LayerGroup, ...] = ()
    source: str = ""

    @model_validator(mode="before")
    @classmethod
    def _flat_from_groups(cls, data):
        """With ``layer_groups``, the flat fields default to the layer count and the widest blocks."""
        if not isinstance(data, dict) or not data.get("layer_groups"):
            return data
        try:
            groups = [g if isinstance(g, LayerGroup) else LayerGroup.model_validate(g) for g in data["layer_groups"]]
        except Exception:
            return data  # the field's own validation reports it
        attn = max((g.attention for g in groups), key=lambda a: a.n_q_heads * a.qk_head_dim)
        mlp = max((g.mlp for g in groups), key=lambda m: m.n_experts * m.ffn_hidden)
        flat = {"n_layers": sum(g.n_layers for g in groups), "n_q_heads": attn.n_q_heads,
                "n_kv_heads": attn.kv_heads if attn.kind == "gqa" else attn.n_q_heads,
                "head_dim": attn.qk_head_dim, "ffn_hidden": mlp.ffn_hidden, "gated_mlp": mlp.gated,
                "n_experts": mlp.n_experts, "top_k": mlp.top_k, "qkv_bias": attn.qkv_bias, "out_bias": mlp.bias}
        return {**flat, **data}

    @model_validator(mode="after")
    def _consistent(self):
        if self.layer_groups and sum(g.n_layers for g in self.layer_groups) != self.n_layers:
            raise ValueError(f"n_layers ({self.n_layers}) must equal the sum of layer_groups' n_layers "
                             f"({sum(g.n_layers for g in self.layer_groups)})")
        for g in self.layer_groups:
            w = g.attention.window_tokens
            if w is not None and w > self.max_context_tokens:
                raise ValueError(f"layer group {g.name}: window_tokens ({w}) exceeds max_context_tokens "
                                 f"({self.max_context_tokens})")
        if len({g.name for g in self.layer_groups}) != len(self.layer_groups):
            raise ValueError("layer_groups need distinct names")
        if self.n_q_heads % self.n_kv_heads:
            raise ValueError(f"n_q_heads ({self.n_q_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})")
        if self.top_k > self.n_experts:
            raise ValueError(f"top_k ({self.top_k}) must be ≤ n_experts ({self.n_experts})")
        return self

    # ---- widths -------------------------------------------------------------------------------------
    @property
    def q_width(self) -> int:
        return self.n_q_heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.n_kv_heads * self.head_dim

    @property
    def is_moe(self) -> bool:
        return any(g.mlp.is_moe for g in self.groups)

    @property
    def groups(self) -> tuple[LayerGroup, ...]:
        """The layer groups: ``layer_groups``, or one group of the flat fields' uniform layer."""
        if self.layer_groups:
            return self.layer_groups
        return _uniform_group(self.n_layers, self.n_q_heads, self.n_kv_heads, self.head_dim, self.qkv_bias,
                              self.out_bias, self.ffn_hidden, self.gated_mlp, self.n_experts, self.top_k)

    # ---- parameter accounting (elements) -------------------------------------------------------------
    @property
    def norm_params(self) -> int:
        return self.hidden * (2 if self.norm == "layernorm" else 1)

    def group_params(self, g: LayerGroup) -> int:
        """One layer of group ``g``: its norms (2, or 4 with sandwich norms), attention and MLP."""
        n_norms = 4 if self.sandwich_norm else 2
        return n_norms * self.norm_params + g.attention.params_with_hidden(self.hidden) + g.mlp.params_with_hidden(
            self.hidden)

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden + self.learned_positions * self.hidden

    @property
    def lm_head_params(self) -> int:
        return 0 if self.tied_embeddings else self.vocab_size * self.hidden

    @property
    def total_params(self) -> int:
        layers = sum(g.n_layers * self.group_params(g) for g in self.groups)
        return layers + self.embedding_params + self.norm_params + self.lm_head_params

    @property
    def active_params(self) -> int:
        """Parameters touched per token (MoE: top_k of n_experts routed experts; shared experts always)."""
        inactive = sum(g.n_layers * (g.mlp.n_experts - g.mlp.top_k) * g.mlp.expert_params(self.hidden)
                       for g in self.groups)
        return self.total_params - inactive

    def weight_bytes(self, dtype: Dtype) -> float:
        return self.total_params * DTYPE_BYTES[dtype]

    # ---- KV cache -------------------------------------------------------------------------------------
    def kv_layout(self, tensor_parallel: int = 1) -> tuple[tuple[int, int, int | None], ...]:
        """Per layer group: (layers, KV elements per token per layer on one GPU, window or None) — from
        ``AttentionSpec.kv_elements_per_token``, the one per-token KV rule."""
        return tuple((g.n_layers, g.attention.kv_elements_per_token(tensor_parallel), g.attention.window_tokens)
                     for g in self.groups)

    def kv_bytes_per_token(self, kv_dtype: Dtype, n_kv_heads: int | None = None, tensor_parallel: int = 1) -> float:
        """KV bytes one token adds over all layers (below every sliding window), e.g. uniform GQA
        2 · n_layers · n_kv_heads · head_dim · bytes; DeepSeek-V3 (MLA) 61 · (512 + 64) · 2 = 70,272 in bf16.

        The single KV-size formula: every attention path, the memory model and context switching use it.
        ``n_kv_heads`` overrides the head count of a uniform GQA model (per-GPU heads under tensor
        parallelism; the older form of ``tensor_parallel``).
        """
        if n_kv_heads is not None and not self.layer_groups:
            return 2 * self.n_layers * n_kv_heads * self.head_dim * DTYPE_BYTES[kv_dtype]
        return sum(n * elems for n, elems, _ in self.kv_layout(tensor_parallel)) * DTYPE_BYTES[kv_dtype]

    def kv_heads_per_gpu(self, tensor_parallel: int) -> int:
        """KV heads held by one GPU: split across ranks, replicated when there are fewer heads than ranks."""
        return math.ceil(self.n_kv_heads / tensor_parallel)


@lru_cache(maxsize=256)
def _uniform_group(n_layers, n_q_heads, n_kv_heads, head_dim, qkv_bias, out_bias, ffn_hidden, gated, n_experts,
                   top_k) -> tuple[LayerGroup, ...]:
    """The one layer group of a flat (uniform) model; cached: a prediction asks for it ~10 times."""
    attn = AttentionSpec(n_q_heads=n_q_heads, n_kv_heads=n_kv_heads, head_dim=head_dim, qkv_bias=qkv_bias,
                         out_bias=out_bias)
    mlp = MLPSpec(ffn_hidden=ffn_hidden, gated=gated, bias=out_bias, n_experts=n_experts, top_k=top_k)
    return (LayerGroup(n_layers=n_layers, attention=attn, mlp=mlp),)
