"""Serving scenarios: what is asked of the model (batch, lengths, precisions, execution mode)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hwspecs.schema import Dtype


class Scenario(BaseModel):
    """One serving point. Counts are tokens per sequence; every sequence in the batch is alike.

    - ``weight_dtype``: storage of weights (int8/int4 = weight-only quantization, dequantized to
      ``activation_dtype`` for the matmul, so GEMMs run at the activation dtype's peak).
    - ``kv_dtype``: storage of the KV cache (fp8/int8/int4 = quantized KV, KIVI-style for int4).
    - ``cuda_graph``: decode steps replayed from a CUDA graph (True) or launched eagerly (False).
    - ``tensor_parallel``: GPUs sharing each layer (Megatron-style); adds two all-reduces per layer.
    - ``kv_block_tokens``: paged-KV block size; a sequence holds whole blocks.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch: int = Field(default=16, gt=0, le=1_000_000)
    prompt_tokens: int = Field(default=2048, gt=0, le=100_000_000)
    output_tokens: int = Field(default=256, gt=0, le=100_000_000)
    weight_dtype: Dtype = "bf16"
    activation_dtype: Dtype = "bf16"
    kv_dtype: Dtype = "bf16"
    cuda_graph: bool = True
    tensor_parallel: int = Field(default=1, gt=0, le=1024)
    kv_block_tokens: int = Field(default=16, gt=0)

    @model_validator(mode="after")
    def _activation_dtype(self):
        if self.activation_dtype in ("int4", "int8"):
            raise ValueError("activation_dtype must be a float type (fp32, tf32, bf16, fp16, fp8), "
                             f"got {self.activation_dtype!r}")
        return self

    @property
    def context_tokens(self) -> int:
        """Tokens held in the KV cache at the end of the request."""
        return self.prompt_tokens + self.output_tokens


DEFAULT_SCENARIO = Scenario()
