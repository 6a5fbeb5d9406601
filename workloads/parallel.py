"""How one model replica is split over GPUs: tensor, pipeline and expert parallelism, data-parallel attention.

Layout (vLLM / SGLang / DeepSeek serving conventions):
- ``tensor_parallel`` t: every attention block (and dense MLP) is split over t GPUs (Megatron: heads and
  FFN columns divided, two all-reduces per layer).
- ``pipeline_parallel`` p: the layers are cut into p consecutive stages (an uneven cut puts ceil(L/p) layers
  on the heaviest stage, as vLLM does for DeepSeek-V3's 61); a batch runs as ``micro_batches`` micro-batches.
- ``expert_parallel`` e: each MoE layer's routed experts are split over e GPUs (E/e whole experts each).
  Without data-parallel attention the experts are split over the tensor-parallel group (e divides t; the
  t/e GPUs sharing an expert split its FFN), tokens stay replicated and the MLP all-reduce remains.
- ``data_parallel_attention``: attention (and dense MLPs, shared experts, embedding and LM head) runs
  data-parallel over e/t groups of t GPUs, each with its own sequences; before and after the routed experts
  an all-to-all dispatches each token's hidden state to the GPUs of its top-k experts and combines the
  results (DeepSeek-V3 serving layout, arXiv 2412.19437 §3.4).
GPUs per replica = (e if data-parallel attention else t) × p.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from workloads.model import ModelSpec


class ParallelError(ValueError):
    """A parallel degree does not fit the model or the system; the message names the field."""


class Parallel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tensor_parallel: int = Field(default=1, gt=0, le=1024)
    pipeline_parallel: int = Field(default=1, gt=0, le=1024)
    expert_parallel: int = Field(default=1, gt=0, le=4096)
    data_parallel_attention: bool = False
    micro_batches: int | None = Field(default=None, gt=0, le=4096, description="default: pipeline_parallel")
    overlap_comm: bool = Field(default=False, description="overlap collectives with the next block's compute")

    @property
    def gpus_per_stage(self) -> int:
        return self.expert_parallel if self.data_parallel_attention else self.tensor_parallel

    @property
    def plain_tensor_parallel(self) -> bool:
        """Only tensor parallelism: every weight (norms and router included) counted as split t ways."""
        return self.pipeline_parallel == 1 and self.expert_parallel == 1 and not self.data_parallel_attention

    @property
    def n_gpus(self) -> int:
        return self.gpus_per_stage * self.pipeline_parallel

    @property
    def attention_dp(self) -> int:
        """Data-parallel attention groups per stage (1 without data-parallel attention)."""
        return self.expert_parallel // self.tensor_parallel if self.data_parallel_attention else 1

    @property
    def n_micro_batches(self) -> int:
        return self.micro_batches or self.pipeline_parallel

    def stage_layers(self, n_layers: int) -> int:
        """Layers on the heaviest pipeline stage."""
        return math.ceil(n_layers / self.pipeline_parallel)

    def check(self, model: ModelSpec, n_gpus_available: int | None = None, hardware_id: str = "") -> "Parallel":
        """Clear one-line errors for degrees that do not fit the model or the system."""
        t, p, e = self.tensor_parallel, self.pipeline_parallel, self.expert_parallel
        if p > model.n_layers:
            raise ParallelError(f"pipeline_parallel={p} exceeds {model.id}'s {model.n_layers} layers "
                                "(every stage needs at least one layer)")
        moe = [g for g in model.groups if g.mlp.is_moe]
        if e > 1 and not moe:
            raise ParallelError(f"expert_parallel={e} needs a mixture-of-experts model; {model.id} is dense")
        for g in moe:
            if g.mlp.n_experts % e:
                raise ParallelError(f"expert_parallel={e} must divide {model.id}'s {g.mlp.n_experts} experts")
        if self.data_parallel_attention:
            if e == 1:
                raise ParallelError("data_parallel_attention needs expert_parallel > 1 (the attention "
                                    "data-parallel degree is expert_parallel / tensor_parallel)")
            if e % t:
                raise ParallelError(f"with data_parallel_attention, tensor_parallel={t} must divide "
                                    f"expert_parallel={e}")
        elif t % e:
            raise ParallelError(f"expert_parallel={e} must divide tensor_parallel={t} (experts are split over the "
                                "tensor-parallel GPUs), or set data_parallel_attention")
        if n_gpus_available is not None and self.n_gpus > n_gpus_available:
            raise ParallelError(f"this split needs {self.n_gpus} GPUs ({self.describe()}) but {hardware_id} has "
                                f"{n_gpus_available}")
        return self

    def describe(self) -> str:
        parts = [f"TP{self.tensor_parallel}"]
        if self.pipeline_parallel > 1:
            parts.append(f"PP{self.pipeline_parallel}")
        if self.expert_parallel > 1:
            parts.append(f"EP{self.expert_parallel}")
        if self.data_parallel_attention:
            parts.append(f"DP-attention{self.attention_dp}")
        return "×".join(parts)


SINGLE = Parallel()
