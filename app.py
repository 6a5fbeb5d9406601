"""hwperf explorer (Streamlit): the same public API as the CLI. Run: streamlit run app.py

A thin page: inputs and layout here, everything it shows is built in faces/app_view.py.
"""

from __future__ import annotations

import streamlit as st

import hwspecs
import simulator
import workloads
from faces import app_view, display

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
    state = st.selectbox("Operating state", ["sustained", "burst"], index=0,
                         help="sustained: continuous load, clock held under the power limit; burst: after idle")
    cap = st.number_input("Power cap (W, 0 = device limit)", min_value=0.0, max_value=5000.0, value=0.0, step=10.0)
    clock_mhz = st.number_input("Locked SM clock (MHz, 0 = free)", min_value=0.0, max_value=5000.0, value=0.0,
                                step=10.0)

calibration = "auto" if calibrated else None
try:
    scenario = workloads.Scenario(batch=int(batch), prompt_tokens=int(prompt), output_tokens=int(output),
                                  weight_dtype=weight_dtype, activation_dtype=act_dtype, kv_dtype=kv_dtype,
                                  cuda_graph=cuda_graph, tensor_parallel=int(tp), state=state,
                                  power_cap_w=cap or None, sm_clock_hz=clock_mhz * 1e6 or None)
    p = simulator.predict(hw_id, model_id, scenario, calibration=calibration)
except ValueError as e:  # bad input, unsupported dtype, or a model / batch that does not fit
    st.error(display.error_line(e))
    st.stop()

for col, m in zip(st.columns(7), app_view.headline_metrics(p, scenario)):
    col.metric(m.label, m.value, help=m.help)
st.caption(app_view.caption(p))

tab_ops, tab_sweep, tab_mem, tab_power = st.tabs(["Per-op breakdown", "Batch sweep", "Memory", "Power cap"])
with tab_ops:
    st.plotly_chart(app_view.ops_figure(p.ops), use_container_width=True)
    st.dataframe(p.ops, use_container_width=True, hide_index=True)
with tab_sweep:
    df = app_view.batch_sweep(hw_id, model_id, scenario, calibration)
    st.plotly_chart(app_view.sweep_figure(df), use_container_width=True)
    st.dataframe(df, use_container_width=True, hide_index=True)
with tab_mem:
    st.plotly_chart(app_view.memory_figure(app_view.memory_breakdown_bytes(p, hw_id)), use_container_width=True)
with tab_power:
    pw = app_view.power_sweep(hw_id, model_id, scenario, calibration)
    st.plotly_chart(app_view.power_figure(pw), use_container_width=True)
    st.dataframe(pw, use_container_width=True, hide_index=True)
