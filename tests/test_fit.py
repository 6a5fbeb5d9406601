"""Fit checks that hold: each contradiction a new user found (issue 13) is now resolved, and the memory
model's peak and concurrency agree with each other and with a published checkpoint size."""

import math
import re

import pytest

import simulator
import workloads
from simulator import fit

HW, MODEL = "h100-sxm5-80gb", "llama-3-8b"


def test_peak_memory_and_concurrency_agree():
    """'needs X GB … at most N fit' must mean: N requests fit and N + 1 do not (batch-40 case)."""
    for chunk in (None, 2048):
        sc = workloads.Scenario(batch=40, prompt_tokens=7936, output_tokens=256, prefill_chunk_tokens=chunk)
        try:
            p = simulator.predict(HW, MODEL, sc)
            n = p.max_concurrency
            assert n >= 40
        except simulator.DoesNotFitError as e:
            n = int(re.search(r"at most (\d+)", str(e)).group(1))
            assert 0 < n < 40
        ok = simulator.predict(HW, MODEL, sc.model_copy(update={"batch": n}))
        assert ok.max_concurrency == n and ok.peak_memory_bytes <= 80 * 2**30
        with pytest.raises(simulator.DoesNotFitError):
            simulator.predict(HW, MODEL, sc.model_copy(update={"batch": n + 1}))


def test_chunked_prefill_admits_more_requests():
    sc = workloads.Scenario(batch=1, prompt_tokens=7936, output_tokens=256)
    whole = simulator.predict(HW, MODEL, sc).max_concurrency
    chunked = simulator.predict(HW, MODEL, sc.model_copy(update={"prefill_chunk_tokens": 2048})).max_concurrency
    assert chunked > whole


def test_memory_utilization_fraction_reserves_the_rest():
    lo = simulator.predict(HW, MODEL, workloads.Scenario(memory_utilization_frac=0.5))
    hi = simulator.predict(HW, MODEL, workloads.Scenario(memory_utilization_frac=0.95))
    assert lo.memory["workspace_bytes"] == pytest.approx(0.5 * 80 * 2**30)
    assert hi.memory["workspace_bytes"] == pytest.approx(0.05 * 80 * 2**30)
    assert hi.max_concurrency > lo.max_concurrency
    with pytest.raises(ValueError, match="memory_utilization_frac"):
        workloads.Scenario(memory_utilization_frac=1.5)


@pytest.mark.parametrize("tp,hardware,match", [
    (3, HW, "query heads"),              # 32 query / 8 KV heads: 3 divides neither
    (16, "dgx-h100", "exceeds the 8 GPUs"),
    (64, HW, "query heads"),              # more ranks than query heads
    (12, "h200-sxm-141gb", "query heads"),
])
def test_tensor_parallel_degrees_are_checked(tp, hardware, match):
    with pytest.raises(ValueError, match=match):
        simulator.predict(hardware, MODEL, workloads.Scenario(tensor_parallel=tp))


def test_tensor_parallel_kv_heads_follow_vllm():
    m = workloads.load_model(MODEL)  # 32 query heads, 8 KV heads
    fit.check_tensor_parallel(m, 16)  # 16 ranks: each KV head replicated on 2 ranks (vLLM allows it)
    with pytest.raises(ValueError, match="KV heads"):
        fit.check_tensor_parallel(m.model_copy(update={"n_kv_heads": 4, "n_q_heads": 36}), 6)
    assert simulator.predict("dgx-h100", "llama-3-70b", workloads.Scenario(tensor_parallel=8)).ttft_s > 0


@pytest.mark.parametrize("model,prompt,limit", [("llama-2-7b", 100_000, "4,096"), ("opt-13b", 8192, "2,048"),
                                                ("llama-3-8b", 8192, "8,192")])
def test_context_limits(model, prompt, limit):
    with pytest.raises(ValueError, match=f"max_context_tokens \\({limit}\\)"):
        simulator.predict("h200-sxm-141gb", model, workloads.Scenario(batch=1, prompt_tokens=prompt))
    df = simulator.sweep("h200-sxm-141gb", model, batch=[1], prompt_tokens=[512, prompt], output_tokens=[256])
    assert list(df.limit) == ["", "context"] and list(df.fits) == [True, False]


@pytest.mark.parametrize("field", ["weight_dtype", "kv_dtype"])
def test_tf32_is_not_a_storage_dtype(field):
    with pytest.raises(ValueError, match=f"{field} must be one of .*tf32 is a math mode"):
        simulator.predict(HW, MODEL, workloads.Scenario(**{field: "tf32"}))
    with pytest.raises(ValueError, match=field):
        simulator.sweep(HW, MODEL, **{field: ["bf16", "tf32"]})


def test_bounds_with_no_request_fitting_time_no_decode_step():
    df = simulator.long_context_bounds("a100-sxm4-80gb", "yi-34b", [4096, 50_000])
    zero = df[df.max_concurrency == 0]
    assert len(zero) == 1 and zero.decode_users.iloc[0] == 0 and math.isnan(zero.decode_step_s.iloc[0])


def test_mixtral_int4_does_not_fit_one_rtx_4090():
    """46.7 B parameters at 4 bits with fp16 scales per 128 and a 16-bit embedding and LM head are
    ~24.6 GB: more than 0.9 of the 4090's 24 GiB (23.2 GB)."""
    with pytest.raises(simulator.DoesNotFitError, match="weights in int4 need 24"):
        simulator.predict("rtx-4090", "mixtral-8x7b", workloads.Scenario(weight_dtype="int4", batch=1))


def test_int4_weights_match_a_published_gptq_checkpoint():
    """TheBloke/Llama-2-13B-GPTQ, main branch (4 bits, group size 128, AutoGPTQ): 7.26 GB on disk
    (https://huggingface.co/TheBloke/Llama-2-13B-GPTQ, 'Provided files'); the file also holds 4-bit
    zero points and act-order indices (+0.7%), which symmetric serving does not need. Counting the
    embedding and LM head at 4 bits without scales would give 6.5 GB (−10%)."""
    p = simulator.predict("h100-sxm5-80gb", "llama-2-13b", workloads.Scenario(weight_dtype="int4", batch=1,
                                                                            prompt_tokens=512))
    assert p.memory["weights_bytes"] == pytest.approx(7.26e9, rel=0.02)


def test_lm_head_stays_16_bit_in_the_op_graph():
    p = simulator.decode_step(HW, MODEL, 1, 1024, weight_dtype="int4")
    m = workloads.load_model(MODEL)
    head = p.ops.set_index("op").loc["lm_head"]
    assert head.weight_bytes == pytest.approx(m.vocab_size * m.hidden * 2)


def test_step_apis_refuse_what_does_not_fit_unless_told():
    """prefill, decode_step and context_switch make predict's fit check (issue 14), with an opt-out."""
    from simulator.memory import DoesNotFitError
    with pytest.raises(DoesNotFitError, match="prefill: batch=64"):
        simulator.prefill("h100-sxm5-80gb", "llama-3-8b", 64, 8192)
    with pytest.raises(DoesNotFitError, match="decode_step"):
        simulator.decode_step("h100-sxm5-80gb", "llama-3-8b", 8192, 4096)
    with pytest.raises(DoesNotFitError, match="context_switch"):
        simulator.context_switch("a100-sxm4-80gb", "yi-34b", 50_000)
    with pytest.raises(ValueError, match="max_context_tokens|context"):
        simulator.decode_step("h100-sxm5-80gb", "llama-2-7b", 1, 100_000)
    assert simulator.prefill("h100-sxm5-80gb", "llama-3-8b", 64, 8192, check_fit=False).time_s > 0
    assert simulator.context_switch("a100-sxm4-80gb", "yi-34b", 50_000, check_fit=False).swap_s > 0
    with pytest.raises(ValueError, match="check_fit"):
        simulator.prefill("h100-sxm5-80gb", "llama-3-8b", 1, 128, check_fit="no")
