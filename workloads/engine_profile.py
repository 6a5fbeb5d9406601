"""Serving-engine profiles: what a real engine adds around the kernels, as plain YAML files in
``workloads/engines/<id>.yaml`` (users may pass their own path).

A serving engine spends host time every iteration (scheduling, input preparation, sampling,
detokenization) and per sequence, launches kernels eagerly or from CUDA graphs, fuses elementwise ops
into neighbouring kernels or not, and leaves a fraction of device memory to its KV cache
(vLLM's ``gpu_memory_utilization``). ``hwperf calibrate-engine`` fits the two host times to a user's
end-to-end table (``simulator.serving.profile_fit``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from hwspecs.loader import is_yaml_path, read_yaml_mapping, validate_spec

ENGINES_DIR = Path(__file__).parent / "engines"


class EngineProfileError(ValueError):
    """An engine-profile id, file or field is wrong; the message names it."""


class EngineProfile(BaseModel):
    """Host-side and memory behaviour of one serving engine (version); SI units, every number sourced."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    NUMBERS: ClassVar[tuple] = ("iteration_fixed_s", "per_sequence_s", "memory_utilization_frac")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    name: str
    iteration_fixed_s: float = Field(ge=0, description="host time per iteration: schedule, prepare, sample")
    per_sequence_s: float = Field(ge=0, description="host time per sequence in the iteration (sampling, detokenize)")
    eager_launch_overhead_s: float | None = Field(default=None, ge=0,
                                                  description="per-kernel issue time in eager mode; None: calibration's")
    cuda_graph: bool = Field(default=True, description="decode steps replayed from CUDA graphs")
    fused_elementwise: bool = Field(default=True, description="norms/activations fused: they stream at copy rate")
    memory_utilization_frac: float = Field(gt=0, le=1, description="share of device memory the engine may use")
    sources: dict[str, str]

    def model_post_init(self, _ctx) -> None:
        missing = [f for f in self.NUMBERS if f not in self.sources]
        if missing:
            raise ValueError(f"engine profile {self.id}: sources must name {', '.join(missing)}")


def available_engines() -> list[str]:
    return sorted(p.stem for p in ENGINES_DIR.glob("*.yaml"))


def _load_file(path: Path) -> EngineProfile:
    return validate_spec(EngineProfile, read_yaml_mapping(path, EngineProfileError, "engine profile"), path, EngineProfileError)


@lru_cache(maxsize=None)
def _builtin(engine_id: str) -> EngineProfile:
    return _load_file(ENGINES_DIR / f"{engine_id}.yaml")


def load_engine(id_or_path: str | os.PathLike | EngineProfile) -> EngineProfile:
    """An engine profile by id (``vllm-0.2``), path, or as given."""
    if isinstance(id_or_path, EngineProfile):
        return id_or_path
    text = str(id_or_path)
    if is_yaml_path(text):
        return _load_file(Path(text))
    if not (ENGINES_DIR / f"{text}.yaml").is_file():
        raise EngineProfileError(f"unknown engine profile {text!r}; known ids: {', '.join(available_engines())}")
    return _builtin(text)
