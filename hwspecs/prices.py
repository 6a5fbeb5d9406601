"""Default GPU-hour prices (hwspecs/prices.yaml): a source and a date on each; None where unknown."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

PRICES_FILE = Path(__file__).parent / "prices.yaml"


class GpuHourPrice(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    usd_per_gpu_hour: float | None = Field(gt=0, allow_inf_nan=False)
    source: str
    date: str


@lru_cache(maxsize=1)
def default_prices() -> dict[str, GpuHourPrice]:
    data = yaml.safe_load(PRICES_FILE.read_text())
    return {k: GpuHourPrice(**v) for k, v in data.items()}


def gpu_hour_price(hw_id: str) -> GpuHourPrice:
    """The default price of one GPU-hour of ``hw_id`` (usd_per_gpu_hour None when no list price is known)."""
    return default_prices().get(hw_id) or GpuHourPrice(usd_per_gpu_hour=None, source="no default price",
                                                       date="")
