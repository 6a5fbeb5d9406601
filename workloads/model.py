"""Model architectures: a frozen ``ModelSpec`` per transformer, with parameter and KV-cache accounting.

Covers dense decoder-only models (Llama/Mistral/Yi/Qwen2 style: RMSNorm, RoPE, gated SiLU MLP, GQA),
OPT style (LayerNorm with bias, learned positions, biased linears, ReLU MLP, tied embeddings) and
MoE (Mixtral: n_experts gated MLPs per layer, top_k routed per token).

Parameter counts here are checked against a torch module built on the ``meta`` device (tests).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hwspecs.schema import DTYPE_BYTES, Dtype


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
    source: str = ""

    @model_validator(mode="after")
    def _consistent(self):
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
        return self.n_experts > 1

    # ---- parameter accounting (elements) -------------------------------------------------------------
    @property
    def norm_params(self) -> int:
        return self.hidden * (2 if self.norm == "layernorm" else 1)

    @property
    def attn_params(self) -> int:
        qkv = self.hidden * (self.q_width + 2 * self.kv_width) + (self.q_width + 2 * self.kv_width) * self.qkv_bias
        out = self.q_width * self.hidden + self.hidden * self.out_bias
        return qkv + out

    @property
    def expert_params(self) -> int:
        """One MLP (one expert): gate+up (gated) or up, then down."""
        n_in = 2 if self.gated_mlp else 1
        up = n_in * self.hidden * self.ffn_hidden + n_in * self.ffn_hidden * self.out_bias
        down = self.ffn_hidden * self.hidden + self.hidden * self.out_bias
        return up + down

    @property
    def router_params(self) -> int:
        return self.hidden * self.n_experts if self.is_moe else 0

    @property
    def layer_params(self) -> int:
        return 2 * self.norm_params + self.attn_params + self.n_experts * self.expert_params + self.router_params

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden + self.learned_positions * self.hidden

    @property
    def lm_head_params(self) -> int:
        return 0 if self.tied_embeddings else self.vocab_size * self.hidden

    @property
    def total_params(self) -> int:
        return (self.n_layers * self.layer_params + self.embedding_params + self.norm_params
                + self.lm_head_params)

    @property
    def active_params(self) -> int:
        """Parameters touched per token (MoE: top_k experts of n_experts)."""
        inactive = (self.n_experts - self.top_k) * self.expert_params * self.n_layers
        return self.total_params - inactive

    def weight_bytes(self, dtype: Dtype) -> float:
        return self.total_params * DTYPE_BYTES[dtype]

    # ---- KV cache -------------------------------------------------------------------------------------
    def kv_bytes_per_token(self, kv_dtype: Dtype, n_kv_heads: int | None = None) -> float:
        """K and V for one token over all layers: 2 · n_layers · n_kv_heads · head_dim · bytes.

        The single KV-size formula: every attention path, the memory model and context switching use it.
        ``n_kv_heads`` overrides the head count (per-GPU heads under tensor parallelism).
        """
        heads = self.n_kv_heads if n_kv_heads is None else n_kv_heads
        return 2 * self.n_layers * heads * self.head_dim * DTYPE_BYTES[kv_dtype]

    def kv_heads_per_gpu(self, tensor_parallel: int) -> int:
        """KV heads held by one GPU: split across ranks, replicated when there are fewer heads than ranks."""
        return math.ceil(self.n_kv_heads / tensor_parallel)
