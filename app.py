"""hwperf explorer (Streamlit): the same public API as the CLI. Run: streamlit run app.py"""

from __future__ import annotations

import plotly.express as px
import streamlit as st

import hwspecs
import simulator
import workloads
from simulator import display

st.set_page_config(page_title="hwperf", layout="wide")
st.title("hwperf — LLM inference cost on described hardware")

DTYPES = list(hwspecs.DTYPES)
gpus = hwspecs.available("gpu")
models = workloads.available_models()

with st.sidebar:
    hw_id = st.selectbox("Hardware", gpus, index=gpus.index("h100-sxm5-80gb"))
    model_id = st.selectbox("Model", models, index=models.index("llama-3-8b"))
    batch = st.number_input("Batch", min_value=1, max_value=100_000, value=16, step=1)
    prompt = st.number_input("Prompt tokens", min_value=1, max_value=10_000_000, value=2048, step=256)
    output = st.number_input("Output tokens", min_value=1, max_value=10_000_000, value=256, step=64)
    weight_dtype = st.selectbox("Weight dtype", DTYPES, index=DTYPES.index("bf16"))
    kv_dtype = st.selectbox("KV-cache dtype", DTYPES, index=DTYPES.index("bf16"))
    act_dtype = st.selectbox("Activation dtype", ["bf16", "fp16", "fp8", "fp32"], index=0)
    tp = st.number_input("Tensor parallel (GPUs)", min_value=1, max_value=64, value=1, step=1)
    cuda_graph = st.toggle("CUDA-graph decode", value=True)
    calibrated = st.toggle("Use calibration (auto)", value=True)

calibration = "auto" if calibrated else None
try:
    scenario = workloads.Scenario(batch=int(batch), prompt_tokens=int(prompt), output_tokens=int(output),
                                  weight_dtype=weight_dtype, activation_dtype=act_dtype, kv_dtype=kv_dtype,
                                  cuda_graph=cuda_graph, tensor_parallel=int(tp))
    p = simulator.predict(hw_id, model_id, scenario, calibration=calibration)
except ValueError as e:  # bad input, unsupported dtype, or a model / batch that does not fit
    st.error(display.error_line(e))
    st.stop()

c = st.columns(5)
c[0].metric("TTFT", display.seconds(p.ttft_s), help=f"prefill, {p.prefill_bound}-bound")
c[1].metric("TPOT", display.seconds(p.tpot_s), help=f"mean decode step, {p.decode_bound}-bound")
c[2].metric("End-to-end", display.seconds(p.e2e_s))
c[3].metric("Decode throughput", f"{p.decode_tokens_per_s:,.0f} tok/s")
c[4].metric("Max concurrency", f"{p.max_concurrency}", help=f"requests of {scenario.context_tokens} tokens")
st.caption(f"Calibration: {p.calibration} · peak memory per GPU {display.size(p.peak_memory_bytes)} · "
           f"HBM traffic {display.size(p.hbm_bytes)}")

tab_ops, tab_sweep, tab_mem = st.tabs(["Per-op breakdown", "Batch sweep", "Memory"])
with tab_ops:
    ops = p.ops
    fig = px.bar(ops, x="total_time_s", y="op", color="bound", facet_col="phase", orientation="h",
                 labels={"total_time_s": "time per pass (s)"})
    fig.update_xaxes(matches=None)
    st.plotly_chart(fig, use_container_width=True)
    st.dataframe(ops, use_container_width=True, hide_index=True)
with tab_sweep:
    batches = [b for b in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)]
    df = simulator.sweep(hw_id, model_id, calibration=calibration, batch=batches,
                         prompt_tokens=[int(prompt)], output_tokens=[int(output)], weight_dtype=[weight_dtype],
                         kv_dtype=[kv_dtype], activation_dtype=[act_dtype], tensor_parallel=[int(tp)],
                         cuda_graph=[cuda_graph])
    fig = px.line(df, x="tpot_s", y="decode_tokens_per_s", markers=True, hover_data=["batch", "fits"],
                  labels={"tpot_s": "TPOT (s)", "decode_tokens_per_s": "decode tokens/s"})
    st.plotly_chart(fig, use_container_width=True)
    st.dataframe(df, use_container_width=True, hide_index=True)
with tab_mem:
    mem = {**p.memory, "free_bytes": max(hwspecs.resolve_hardware(hw_id).memory_bytes - p.peak_memory_bytes, 0.0)}
    st.plotly_chart(px.pie(names=list(mem), values=list(mem.values()), title="Device memory per GPU"),
                    use_container_width=True)
