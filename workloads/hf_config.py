"""A Hugging Face ``config.json`` as a model: mapped onto ``ModelSpec`` layer groups, offline.

``load_hf_config(source)`` takes a path to a ``config.json``, a folder holding one, or a hub id
("deepseek-ai/DeepSeek-V3") already in the local Hugging Face cache ($HF_HUB_CACHE, else
$HF_HOME/hub, else ~/.cache/huggingface/hub); nothing is downloaded.

Supported ``model_type``s (the transformers configuration classes of the same names): llama, mistral,
mixtral, qwen2, qwen3, qwen3_moe, gemma3 / gemma3_text, gpt_oss, deepseek_v3. Fields that change the
architecture but have no mapping (e.g. Qwen MoE ``mlp_only_layers`` or ``decoder_sparse_step`` ≠ 1, a
``hidden_act`` outside silu/gelu/relu, ``layer_types`` other than sliding/full attention) raise
``HFConfigError`` naming the field; fields that change nothing we count (rope scaling, dropout, token ids,
initialisation, the quantization recipe) are ignored. DeepSeek's multi-token-prediction layers
(``num_nextn_predict_layers``) are not part of the served model and are left out.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from pydantic import ValidationError

from workloads.model import ModelSpec

SUPPORTED = ("llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe", "gemma3", "gemma3_text", "gpt_oss",
             "deepseek_v3")
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")
# Defaults of the transformers configuration classes for keys the published files leave out.
_DEFAULTS = {
    "gemma3_text": {"vocab_size": 262_208, "max_position_embeddings": 131_072, "sliding_window_pattern": 6,
                    "tie_word_embeddings": True, "hidden_activation": "gelu_pytorch_tanh", "head_dim": 256,
                    "sliding_window": 4096},
    "qwen3": {"tie_word_embeddings": False},
}
_ACTIVATIONS = {"silu": "silu", "swish": "silu", "gelu": "gelu", "gelu_pytorch_tanh": "gelu", "gelu_new": "gelu",
                "relu": "relu"}


class HFConfigError(ValueError):
    """A config.json that cannot be mapped; the message names the field."""


def is_hf_source(text: str) -> bool:
    """A config.json path, a folder with one, or a hub id (org/name)."""
    p = Path(text)
    return text.endswith(".json") or (p.is_dir() and (p / "config.json").is_file()) or bool(HUB_ID.match(text))


def cached_config_path(hub_id: str) -> Path:
    """config.json of the newest cached snapshot of ``hub_id``; an error naming the cache otherwise."""
    root = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache/huggingface"))
                / "hub")
    snaps = root / f"models--{hub_id.replace('/', '--')}" / "snapshots"
    found = sorted(snaps.glob("*/config.json"), key=lambda p: p.stat().st_mtime) if snaps.is_dir() else []
    if not found:
        raise HFConfigError(f"{hub_id!r} is not in the local Hugging Face cache ({root}); hwperf does not download: "
                            "pass a config.json path, or fetch it first (huggingface-cli download "
                            f"{hub_id} config.json)")
    return found[-1]


def load_hf_config(source: str | os.PathLike) -> ModelSpec:
    text = str(source)
    path = Path(text)
    if path.is_dir():
        path = path / "config.json"
    elif not text.endswith(".json"):
        path = cached_config_path(text)
    try:
        cfg = json.loads(path.read_text())
    except OSError as e:
        raise HFConfigError(f"cannot read {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise HFConfigError(f"{path}: malformed JSON: {e}") from None
    if not isinstance(cfg, dict):
        raise HFConfigError(f"{path}: expected a JSON object")
    name = text if HUB_ID.match(text) else (path.parent.name if path.name == "config.json" else path.stem)
    return spec_from_config(cfg, name, str(path))


def _need(cfg: dict, key: str, where: str):
    if key not in cfg or cfg[key] is None:
        raise HFConfigError(f"{where}: missing field '{key}'")
    return cfg[key]


def _attention(cfg: dict, where: str, window=None) -> dict:
    heads = _need(cfg, "num_attention_heads", where)
    if cfg.get("model_type") == "deepseek_v3":
        return {"kind": "mla", "n_q_heads": heads, "q_lora_rank": cfg.get("q_lora_rank") or 0,
                **{k: _need(cfg, k, where) for k in ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
                                                    "v_head_dim")}}
    hidden = _need(cfg, "hidden_size", where)
    a = {"n_q_heads": heads, "n_kv_heads": cfg.get("num_key_value_heads") or heads,
         "head_dim": cfg.get("head_dim") or hidden // heads, "qkv_bias": bool(cfg.get("attention_bias", False)),
         "out_bias": bool(cfg.get("attention_bias", False)) and cfg["model_type"] == "gpt_oss",
         "qk_norm": cfg["model_type"] in ("qwen3", "qwen3_moe", "gemma3_text"), "sinks": cfg["model_type"] == "gpt_oss"}
    if cfg["model_type"] == "qwen2":
        a["qkv_bias"] = True  # Qwen2 always biases q, k, v (modeling_qwen2.py)
    return a if window is None else {**a, "window_tokens": window}


def _mlp(cfg: dict, where: str) -> dict:
    t = cfg["model_type"]
    experts = cfg.get("num_local_experts") or cfg.get("num_experts") or cfg.get("n_routed_experts")
    if t == "qwen3_moe":
        if cfg.get("mlp_only_layers"):
            raise HFConfigError(f"{where}: field 'mlp_only_layers' (dense layers inside a Qwen MoE stack) is not "
                                "supported")
        if cfg.get("decoder_sparse_step", 1) != 1:
            raise HFConfigError(f"{where}: field 'decoder_sparse_step' ≠ 1 is not supported")
    if not experts or t not in ("mixtral", "qwen3_moe", "gpt_oss", "deepseek_v3"):
        return {"ffn_hidden": _need(cfg, "intermediate_size", where), "bias": bool(cfg.get("mlp_bias", False))}
    width = cfg.get("moe_intermediate_size") or _need(cfg, "intermediate_size", where)
    mlp = {"ffn_hidden": width, "n_experts": experts, "top_k": cfg.get("num_experts_per_tok") or
           _need(cfg, "experts_per_token", where)}
    if t == "gpt_oss":
        mlp.update(bias=True, router_bias=True)
    if t == "deepseek_v3":
        mlp.update(n_shared_experts=cfg.get("n_shared_experts") or 0,
                   router_bias=cfg.get("topk_method") == "noaux_tc")
    return mlp


def _groups(cfg: dict, where: str) -> list[dict]:
    """Layer groups: DeepSeek's dense-then-MoE, sliding/full attention by ``layer_types`` or Gemma's period."""
    t, n = cfg["model_type"], _need(cfg, "num_hidden_layers", where)
    if t == "deepseek_v3":
        dense = cfg.get("first_k_dense_replace", 0)
        moe = {"name": "moe", "n_layers": n - dense, "attention": _attention(cfg, where), "mlp": _mlp(cfg, where)}
        dense_mlp = {"ffn_hidden": _need(cfg, "intermediate_size", where)}
        return ([{"name": "dense", "n_layers": dense, "attention": _attention(cfg, where), "mlp": dense_mlp}]
                if dense else []) + [moe]
    kinds = cfg.get("layer_types")
    window = cfg.get("sliding_window")
    if t == "gemma3_text" and kinds is None:
        period = cfg.get("sliding_window_pattern", 6)
        kinds = ["full_attention" if (i + 1) % period == 0 else "sliding_attention" for i in range(n)]
    if kinds is None:
        use = window is not None and (t == "mistral" or cfg.get("use_sliding_window", False))
        kinds = ["sliding_attention" if use else "full_attention"] * n
    bad = sorted(set(kinds) - {"sliding_attention", "full_attention"})
    if bad or len(kinds) != n:
        raise HFConfigError(f"{where}: field 'layer_types' must list {n} of sliding_attention/full_attention, "
                            f"got {bad or len(kinds)}")
    groups = []
    for kind, name in (("sliding_attention", "sliding"), ("full_attention", "full")):
        count = kinds.count(kind)
        if count:
            groups.append({"name": name if len(set(kinds)) > 1 else "layers", "n_layers": count,
                           "attention": _attention(cfg, where, window if kind == "sliding_attention" else None),
                           "mlp": _mlp(cfg, where)})
    return groups


def spec_from_config(cfg: dict, name: str, where: str = "config.json") -> ModelSpec:
    """The ModelSpec of a parsed config.json (a multimodal config's ``text_config`` is the model)."""
    if "text_config" in cfg and isinstance(cfg["text_config"], dict):
        cfg = {"model_type": cfg["text_config"].get("model_type", "gemma3_text"), **cfg["text_config"]}
    t = cfg.get("model_type")
    if t == "gemma3":
        t = "gemma3_text"
    if t not in SUPPORTED:
        raise HFConfigError(f"{where}: field 'model_type' {t!r} is not supported (supported: {', '.join(SUPPORTED)})")
    cfg = {**_DEFAULTS.get(t, {}), **cfg, "model_type": t}
    act = cfg.get("hidden_activation") or cfg.get("hidden_act", "silu")
    if act not in _ACTIVATIONS:
        raise HFConfigError(f"{where}: field 'hidden_act' {act!r} is not supported "
                            f"(supported: {', '.join(_ACTIVATIONS)})")
    ident = re.sub(r"[^a-z0-9.\-]+", "-", name.lower()).strip("-.") or "hf-model"
    data = {"id": ident, "name": name, "hidden": _need(cfg, "hidden_size", where),
            "vocab_size": _need(cfg, "vocab_size", where),
            "tied_embeddings": bool(cfg.get("tie_word_embeddings", t == "gemma3_text")),
            "activation": _ACTIVATIONS[act], "sandwich_norm": t == "gemma3_text",
            "max_context_tokens": _need(cfg, "max_position_embeddings", where),
            "layer_groups": _groups(cfg, where), "source": where}
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        raise HFConfigError(f"{where}: {'.'.join(str(x) for x in first['loc'])}: {first['msg']}") from None
