"""Serving scenarios: what is asked of the model (batch, lengths, precisions, execution mode)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr, field_validator, model_validator

from hwspecs.schema import DTYPES, Dtype
from workloads import kv_methods
from workloads.parallel import Parallel

# Checks of one value by name: the one place a count, a dtype, a flag or a positive quantity is validated
# (Scenario's fields, the API's keyword arguments, sweep axes and kernel shapes all call these).

# Upper bounds of counts, by name: far beyond any real deployment, low enough that every product the model
# forms stays a finite float (10¹⁹ as int64 wraps; a batch of 1e300 gives inf). Other counts: 2⁵³, the
# largest integer a float64 holds exactly.
COUNT_LIMITS = {"batch": 1_000_000, "prompt_tokens": 100_000_000, "output_tokens": 100_000_000,
                "context_tokens": 100_000_000, "tensor_parallel": 1024, "kv_block_tokens": 1_000_000,
                "concurrent_users": 1_000_000, "n_ranks": 1_000_000,
                "prefill_chunk_tokens": 100_000_000, "pipeline_parallel": 1024, "expert_parallel": 4096,
                "micro_batches": 4096}
MAX_COUNT = 2 ** 53
# Positive quantities (W, Hz …): finite, > 0 and below these.
QUANTITY_LIMITS = {"power_cap_w": 1e5, "sm_clock_hz": 1e11, "memory_utilization_frac": 1.0}


def check_count(name: str, value, minimum: int = 1, maximum: int | None = None) -> int:
    """A whole number in [``minimum``, ``maximum``] (default ``COUNT_LIMITS[name]``, else 2⁵³); NaN, inf,
    bools, fractions and strings are rejected by name."""
    maximum = COUNT_LIMITS.get(name, MAX_COUNT) if maximum is None else maximum
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) or type(value).__module__ == "numpy"
    if ok:
        try:
            ok = math.isfinite(value) and value == int(value) and minimum <= value <= maximum
        except (TypeError, ValueError, OverflowError):
            ok = False
    if not ok:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise ValueError(f"{name} must be a whole number from {minimum} to {maximum:,}, got {shown}")
    return int(value)


def check_positive(name: str, value, maximum: float | None = None) -> float:
    """A finite number > 0 and ≤ ``maximum`` (default ``QUANTITY_LIMITS[name]``); bools and strings rejected."""
    maximum = QUANTITY_LIMITS.get(name, 1e30) if maximum is None else maximum
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) or type(value).__module__ == "numpy"
    if ok:
        try:
            ok = math.isfinite(value) and 0 < value <= maximum
        except (TypeError, ValueError, OverflowError):
            ok = False
    if not ok:
        raise ValueError(f"{name} must be a finite number > 0 and ≤ {maximum:g}, got {value!r}")
    return float(value)


def check_dtype(name: str, value, allowed=DTYPES) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def check_flag(name: str, value) -> bool:
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def check_activation_dtype(value, weight_dtype=None) -> str:
    """A float activation dtype, or int8 for W8A8 INT8 (then weights must be int8 too, when given)."""
    if value == "int4":
        raise ValueError(f"activation_dtype must be a float type (fp32, tf32, bf16, fp16, fp8) or int8 (W8A8), "
                         f"got {value!r}")
    if value == "int8" and weight_dtype is not None and weight_dtype != "int8":
        raise ValueError(f"activation_dtype int8 is W8A8 and needs weight_dtype int8, got weight_dtype "
                         f"{weight_dtype!r}")
    return check_dtype("activation_dtype", value)


_COUNTS = ("batch", "prompt_tokens", "output_tokens", "tensor_parallel", "kv_block_tokens", "prefill_chunk_tokens",
           "pipeline_parallel", "expert_parallel", "micro_batches")
_OPTIONAL_COUNTS = ("prefill_chunk_tokens", "micro_batches")


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
    - ``pipeline_parallel``, ``expert_parallel``, ``data_parallel_attention``, ``micro_batches``,
      ``overlap_comm``, ``collective_algorithm``: the split of one replica over GPUs
      (``workloads.parallel.Parallel``; ``parallel`` gives it).
    - ``expert_imbalance``: MoE routing skew f ≥ 1: tokens spread over a hot set of E/f experts (1: uniform;
      ``simulator.blocks.expected_experts_touched``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Ranges: COUNT_LIMITS / QUANTITY_LIMITS, applied by the check_* functions above (the one place).
    batch: int = 16
    prompt_tokens: int = 2048
    output_tokens: int = 256
    weight_dtype: Dtype = "bf16"
    activation_dtype: Dtype = "bf16"
    kv_dtype: Dtype = "bf16"
    cuda_graph: bool = True
    tensor_parallel: int = 1
    kv_block_tokens: int = 16
    state: Literal["sustained", "burst"] = "sustained"
    power_cap_w: float | None = None
    sm_clock_hz: float | None = None
    memory_utilization_frac: float = 0.9
    prefill_chunk_tokens: int | None = None
    kv_method: str | None = None
    pipeline_parallel: int = 1
    expert_parallel: int = 1
    data_parallel_attention: bool = False
    micro_batches: int | None = None
    overlap_comm: bool = False
    collective_algorithm: Literal["ring", "tree"] = "ring"
    expert_imbalance: float = 1.0

    @field_validator(*_COUNTS, mode="before")
    @classmethod
    def _count(cls, v, info):
        return None if v is None and info.field_name in _OPTIONAL_COUNTS else check_count(info.field_name, v)

    @field_validator("cuda_graph", "data_parallel_attention", "overlap_comm", mode="before")
    @classmethod
    def _flag(cls, v, info):
        return check_flag(info.field_name, v)

    @field_validator("power_cap_w", "sm_clock_hz", "memory_utilization_frac", mode="before")
    @classmethod
    def _quantity(cls, v, info):
        return None if v is None and info.field_name != "memory_utilization_frac" else check_positive(info.field_name, v)

    @field_validator("expert_imbalance", mode="before")
    @classmethod
    def _imbalance(cls, v, info):
        v = check_positive(info.field_name, v, 1e6)
        if v < 1.0:
            raise ValueError(f"expert_imbalance must be ≥ 1 (1: uniform routing), got {v!r}")
        return v

    @model_validator(mode="after")
    def _activation_dtype(self):
        check_activation_dtype(self.activation_dtype, self.weight_dtype)
        kv_methods.parse(self.kv_method).check_context(self.context_tokens)
        return self

    @property
    def parallel(self) -> Parallel:
        return Parallel(tensor_parallel=self.tensor_parallel, pipeline_parallel=self.pipeline_parallel,
                        expert_parallel=self.expert_parallel, data_parallel_attention=self.data_parallel_attention,
                        micro_batches=self.micro_batches, overlap_comm=self.overlap_comm)

    @property
    def n_gpus(self) -> int:
        """GPUs of one replica."""
        return self.parallel.n_gpus

    # The field values this instance was validated with: set after validation, carried unchanged by
    # model_copy (which skips validation), so ``checked`` can tell a validated scenario from an edited copy.
    _validated_values: tuple | None = PrivateAttr(default=None)

    def model_post_init(self, context) -> None:
        self._validated_values = self._values()

    def _values(self) -> tuple:
        return tuple(getattr(self, k) for k in Scenario.model_fields)

    def checked(self) -> "Scenario":
        """This scenario re-validated: ``model_copy(update=…)`` skips validation (batch 0 or 2.5 got through).
        A scenario whose values are the ones it was validated with is returned as it is (~50 µs saved)."""
        if self._validated_values is not None and self._validated_values == self._values():
            return self
        return Scenario.model_validate({k: getattr(self, k) for k in Scenario.model_fields})

    @property
    def context_tokens(self) -> int:
        """Tokens held in the KV cache at the end of the request."""
        return self.prompt_tokens + self.output_tokens


DEFAULT_SCENARIO = Scenario()
