"""Hugging Face config.json → ModelSpec, on real configs (tests/data/hf, sources in its README)."""

import json
from pathlib import Path

import pytest

import simulator
import workloads
from tests.torch_reference_families import count_params_meta
from workloads.hf_config import HFConfigError, load_hf_config, spec_from_config

HF = Path(__file__).parent / "data" / "hf"
# config → the preset written by hand from the model card (its counts are checked against meta modules)
PAIRS = {"llama-3.1-8b.json": "llama-3.1-8b", "deepseek-v3.json": "deepseek-v3", "gpt-oss-20b.json": "gpt-oss-20b",
         "qwen3-30b-a3b.json": "qwen3-30b-a3b", "gemma-3-27b-it.json": "gemma-3-27b"}


@pytest.mark.parametrize("config,preset", PAIRS.items())
def test_config_json_maps_onto_the_preset(config, preset):
    m, ref = load_hf_config(HF / config), workloads.load_model(preset)
    assert m.total_params == ref.total_params == count_params_meta(m)
    assert m.active_params == ref.active_params
    assert m.kv_bytes_per_token("bf16") == ref.kv_bytes_per_token("bf16")
    assert m.kv_layout() == ref.kv_layout()
    assert m.max_context_tokens == ref.max_context_tokens


def test_a_config_json_path_is_a_model_everywhere():
    p = simulator.predict("h100-sxm5-80gb", str(HF / "llama-3.1-8b.json"), workloads.Scenario(batch=4))
    q = simulator.predict("h100-sxm5-80gb", "llama-3.1-8b", workloads.Scenario(batch=4))
    assert p.tpot_s == pytest.approx(q.tpot_s) and p.ttft_s == pytest.approx(q.ttft_s)


def test_cached_hub_id_offline(tmp_path, monkeypatch):
    snap = tmp_path / "models--meta-llama--Llama-3.1-8B" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text((HF / "llama-3.1-8b.json").read_text())
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert workloads.load_model("meta-llama/Llama-3.1-8B").total_params == 8_030_261_248
    with pytest.raises(workloads.ModelError, match="not in the local Hugging Face cache"):
        workloads.load_model("meta-llama/Llama-3.1-70B")


@pytest.mark.parametrize("change,field", [
    ({"model_type": "mamba"}, "model_type"),
    ({"hidden_act": "squared_relu"}, "hidden_act"),
    ({"mlp_only_layers": [0, 1]}, "mlp_only_layers"),
    ({"decoder_sparse_step": 2}, "decoder_sparse_step"),
    ({"num_hidden_layers": None}, "num_hidden_layers"),
    ({"layer_types": ["linear_attention"] * 48}, "layer_types"),
])
def test_unsupported_fields_are_named(change, field):
    cfg = {**json.loads((HF / "qwen3-30b-a3b.json").read_text()), **change}
    with pytest.raises(HFConfigError, match=field):
        spec_from_config(cfg, "Qwen/Qwen3-30B-A3B")


def test_malformed_json_is_a_clear_error(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(workloads.ModelError, match="malformed JSON"):
        workloads.load_model(str(bad))
