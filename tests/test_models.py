"""ModelSpec parameter and KV accounting against torch modules and published figures."""

import dataclasses

import pytest
import torch

import workloads
from tests.torch_reference import Decoder, count_params

# uniform one-layer presets (layer-group presets: tests/test_models_families.py)
PRESETS = [i for i in workloads.available_models() if not workloads.load_model(i).layer_groups]


@pytest.mark.parametrize("model_id", PRESETS)
def test_param_count_matches_meta_module(model_id):
    m = workloads.load_model(model_id)
    with torch.device("meta"):
        module = Decoder(m)
    assert m.total_params == count_params(module)


# Published parameter counts (Hugging Face model cards / safetensors metadata).
PUBLISHED = {
    "llama-2-7b": 6_738_415_616,
    "llama-2-13b": 13_015_864_320,
    "llama-2-70b": 68_976_648_192,
    "llama-3-8b": 8_030_261_248,
    "llama-3-70b": 70_553_706_496,
    "mistral-7b": 7_241_732_096,
    "mixtral-8x7b": 46_702_792_704,
    "qwen2-7b": 7_615_616_512,
}


@pytest.mark.parametrize("model_id,count", PUBLISHED.items())
def test_param_count_matches_published(model_id, count):
    assert workloads.load_model(model_id).total_params == count


def test_mixtral_active_params_is_two_of_eight_experts():
    m = workloads.load_model("mixtral-8x7b")
    # Mistral AI quotes ~12.9B active parameters per token for Mixtral 8x7B.
    assert 12.8e9 < m.active_params < 13.0e9


def test_yi_34b_kv_bytes_per_token():
    # Fu (arXiv 2405.08944) running example: 60 layers × 8 KV heads × 128 dims × K,V × 2 bytes.
    assert workloads.load_model("yi-34b").kv_bytes_per_token("bf16") == 245_760


def test_kv_dtype_scales_kv_bytes():
    m = workloads.load_model("llama-3-8b")
    assert m.kv_bytes_per_token("int4") * 4 == m.kv_bytes_per_token("bf16")
    assert m.kv_bytes_per_token("fp8") * 2 == m.kv_bytes_per_token("bf16")


@pytest.mark.parametrize("bad", [{"n_layers": 0}, {"hidden": -1}, {"n_kv_heads": 7}, {"top_k": 9},
                                 {"unknown_field": 1}, {"n_layers": float("nan")}])
def test_bad_model_fields_are_rejected_by_name(bad):
    base = workloads.load_model("llama-3-8b").model_dump()
    base.update(bad)
    with pytest.raises(ValueError) as e:
        workloads.ModelSpec(**base)
    key = next(iter(bad))
    assert key in str(e.value) or "n_q_heads" in str(e.value) or "top_k" in str(e.value)


def test_unknown_model_lists_known_ids():
    with pytest.raises(workloads.ModelError, match="llama-3-8b"):
        workloads.load_model("llama-9")


def test_model_yaml_by_path_and_malformed(tmp_path):
    good = tmp_path / "tiny.yaml"
    good.write_text("id: tiny\nname: Tiny\nn_layers: 2\nhidden: 64\nn_q_heads: 4\nn_kv_heads: 2\n"
                    "head_dim: 16\nffn_hidden: 128\nvocab_size: 1000\n")
    assert workloads.load_model(str(good)).n_layers == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: tiny\nname: [unclosed\n")
    with pytest.raises(workloads.ModelError, match="malformed YAML"):
        workloads.load_model(str(bad))
    extra = tmp_path / "extra.yaml"
    extra.write_text(good.read_text() + "n_layer: 3\n")
    with pytest.raises(workloads.ModelError, match="n_layer"):
        workloads.load_model(str(extra))


def test_scenario_rejects_bad_values():
    for bad in ({"batch": 0}, {"prompt_tokens": -5}, {"output_tokens": float("nan")}, {"kv_dtype": "int3"},
                {"activation_dtype": "int4"}, {"batchsize": 4}):
        with pytest.raises(ValueError):
            workloads.Scenario(**bad)


def test_specs_are_frozen():
    m = workloads.load_model("llama-3-8b")
    with pytest.raises((TypeError, ValueError, dataclasses.FrozenInstanceError)):
        m.n_layers = 3
