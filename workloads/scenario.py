"""Serving scenarios: what is asked of the model (batch, lengths, precisions, execution mode)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hwspecs.schema import DTYPES, Dtype
from workloads import kv_methods

# Checks of one value by name: the one place a count, a dtype or a flag is validated (Scenario's fields,
# the API's keyword arguments, sweep axes and kernel shapes all call these).


def check_count(name: str, value, minimum: int = 1) -> int:
    """A whole number ≥ ``minimum``; NaN, inf, bools, fractions and strings are rejected by name."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) or type(value).__module__ == "numpy"
    if ok:
        try:
            ok = math.isfinite(value) and value == int(value) and value >= minimum
        except (TypeError, ValueError):
            ok = False
    if not ok:
        raise ValueError(f"{name} must be a whole number ≥ {minimum}, got {value!r}")
    return int(value)


def check_dtype(name: str, value, allowed=DTYPES) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def check_flag(name: str, value) -> bool:
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def check_activation_dtype(value) -> str:
    if value in ("int4", "int8"):
        raise ValueError(f"activation_dtype must be a float type (fp32, tf32, bf16, fp16, fp8), got {value!r}")
    return check_dtype("activation_dtype", value)


class Scenario(BaseModel):
    """One serving point. Counts are tokens per sequence; every sequence in the batch is alike.

    - ``weight_dtype``: storage of weights (int8/int4 = weight-only quantization, dequantized to
      ``activation_dtype`` for the matmul, so GEMMs run at the activation dtype's peak).
    - ``kv_dtype``: storage of the KV cache (fp8/int8/int4 = quantized KV, no metadata counted).
    - ``kv_method``: a KV-compression method over the ``kv_dtype`` cache ("kivi-2", "kvquant-3", "h2o",
      "shadowkv", "minicache", options as "kivi-2:group=64,residual=32"; ``workloads.kv_methods``).
    - ``cuda_graph``: decode steps replayed from a CUDA graph (True) or launched eagerly (False).
    - ``tensor_parallel``: GPUs sharing each layer (Megatron-style); adds two all-reduces per layer.
    - ``kv_block_tokens``: paged-KV block size; a sequence holds whole blocks.
    - ``state``: "sustained" (a serving GPU under continuous load: the clock settles under the power
      limit) or "burst" (right after idle: boost clock).
    - ``power_cap_w``: a power limit below the device's (what-if; None: the device's limit).
    - ``sm_clock_hz``: a locked SM clock (what-if; None: boost, lowered by the power limit as needed).
    - ``memory_utilization_frac``: the share of device memory the serving engine may use for weights,
      activations and KV (vLLM's ``gpu_memory_utilization``, default 0.9); the rest is the runtime reserve.
    - ``prefill_chunk_tokens``: chunked prefill, at most this many tokens per pass (memory accounting only;
      None: the whole batch's prompts in one pass, as ``ttft_s`` times it).
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
    state: Literal["sustained", "burst"] = "sustained"
    power_cap_w: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    sm_clock_hz: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    memory_utilization_frac: float = Field(default=0.9, gt=0, le=1, allow_inf_nan=False)
    prefill_chunk_tokens: int | None = Field(default=None, gt=0)
    kv_method: str | None = None

    @model_validator(mode="after")
    def _activation_dtype(self):
        check_activation_dtype(self.activation_dtype)
        kv_methods.parse(self.kv_method).check_context(self.context_tokens)
        return self

    @property
    def context_tokens(self) -> int:
        """Tokens held in the KV cache at the end of the request."""
        return self.prompt_tokens + self.output_tokens


DEFAULT_SCENARIO = Scenario()
