"""Model presets: plain YAML files in ``workloads/models/<id>.yaml``; users may pass their own path."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from hwspecs.loader import is_yaml_path, read_yaml_mapping, validate_spec

from workloads import hf_config
from workloads.model import ModelSpec

MODELS_DIR = Path(__file__).parent / "models"


class ModelError(ValueError):
    """A model id, file or field is wrong; the message names it and what is allowed."""


def available_models() -> list[str]:
    return sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))


def _load_file(path: Path) -> ModelSpec:
    return validate_spec(ModelSpec, read_yaml_mapping(path, ModelError, "model file"), path, ModelError)


@lru_cache(maxsize=None)
def _builtin(model_id: str) -> ModelSpec:
    return _load_file(MODELS_DIR / f"{model_id}.yaml")


def load_model(id_or_path: str | os.PathLike) -> ModelSpec:
    text = str(id_or_path)
    builtin = (MODELS_DIR / f"{text}.yaml").is_file()
    if not builtin and hf_config.is_hf_source(text):  # a config.json, a folder with one, or a cached hub id
        try:
            return hf_config.load_hf_config(text)
        except hf_config.HFConfigError as e:
            raise ModelError(str(e)) from None
    if is_yaml_path(text):
        return _load_file(Path(text))
    if not builtin:
        raise ModelError(f"unknown model id {text!r}; known ids: {', '.join(available_models())} (or a model "
                         "YAML, a Hugging Face config.json, or a cached hub id org/name)")
    return _builtin(text)


def resolve_model(model: str | ModelSpec) -> ModelSpec:
    if isinstance(model, ModelSpec):
        return model
    if not isinstance(model, (str, os.PathLike)):
        raise ModelError(f"model must be an id string or a ModelSpec, got {type(model).__name__}")
    return load_model(model)
