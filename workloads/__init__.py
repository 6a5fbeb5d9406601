"""Model architectures and serving scenarios: ``workloads.load_model("llama-3-8b")``, ``workloads.Scenario(...)``."""

from workloads.loader import ModelError, available_models, load_model, resolve_model
from workloads.model import ModelSpec
from workloads.scenario import DEFAULT_SCENARIO, Scenario

__all__ = ["DEFAULT_SCENARIO", "ModelError", "ModelSpec", "Scenario", "available_models", "load_model",
           "resolve_model"]
