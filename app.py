"""hwperf explorer (Streamlit): the same public API as the CLI. Run: streamlit run app.py

A thin page: inputs and layout here, everything it shows is built in faces/app_view.py and
faces/app_compare.py. Every input is bound to the URL (``?hw=mi300x&model=llama-3-70b&tp=8``), so a view
can be shared by its address.
"""

from __future__ import annotations

import streamlit as st

import hwspecs
import simulator
import workloads
from faces import app_compare, app_view, display

st.set_page_config(page_title="hwperf", layout="wide")

STORAGE = [d for d in hwspecs.DTYPES if d != "tf32"]
gpus = hwspecs.available("gpu")
models = workloads.available_models()
Q = {"bind": "query-params"}

with st.sidebar:
    view = st.segmented_control("View", ["Explore", "Compare"], default="Explore", key="view", **Q)
    model_id = st.selectbox("Model", models, index=models.index("llama-3-8b"), key="model", **Q)
    batch = st.number_input("Batch (requests)", min_value=1, max_value=100_000, value=16, step=1, key="batch", **Q)
    prompt = st.number_input("Prompt tokens", min_value=1, max_value=10_000_000, value=2048, step=256,
                             key="prompt", **Q)
    output = st.number_input("Output tokens", min_value=1, max_value=10_000_000, value=256, step=64,
                             key="output", **Q)
    kv_dtype = st.selectbox("KV-cache dtype", STORAGE, index=STORAGE.index("bf16"), key="kv", **Q)
    mem_frac = st.slider("Memory share for the engine", 0.5, 1.0, 0.9, 0.01, key="mem", **Q,
                         help="vLLM's gpu_memory_utilization (default 0.9): weights, activations and KV fit here")
    chunk = st.number_input("Prefill chunk tokens (0 = whole batch in one pass)", min_value=0, max_value=1_000_000,
                            value=0, step=512, key="chunk", **Q)
    calibrated = st.toggle("Use calibration (auto)", value=True, key="cal", **Q)
calibration = "auto" if calibrated else None
common = dict(batch=int(batch), prompt_tokens=int(prompt), output_tokens=int(output), kv_dtype=kv_dtype,
              memory_utilization_frac=float(mem_frac), prefill_chunk_tokens=int(chunk) or None)


def explore() -> None:
    with st.sidebar:
        st.divider()
        hw_id = st.selectbox("Hardware", gpus, index=gpus.index("h100-sxm5-80gb"), key="hw", **Q)
        weight_dtype = st.selectbox("Weight dtype", STORAGE, index=STORAGE.index("bf16"), key="w", **Q)
        act_dtype = st.selectbox("Activation dtype", ["bf16", "fp16", "fp8", "fp32", "int8"], index=0, key="act",
                                 help="int8: W8A8 (needs int8 weights)", **Q)
        tp = st.number_input("Tensor parallel (GPUs)", min_value=1, max_value=64, value=1, step=1, key="tp", **Q)
        cuda_graph = st.toggle("CUDA-graph decode", value=True, key="graph", **Q)
        state = st.selectbox("Operating state", ["sustained", "burst"], index=0, key="state", **Q,
                             help="sustained: continuous load, clock held under the power limit; burst: after idle")
        cap = st.number_input("Power cap (W, 0 = device limit)", min_value=0.0, max_value=5000.0, value=0.0,
                              step=10.0, key="cap", **Q)
        clock_mhz = st.number_input("Locked SM clock (MHz, 0 = free)", min_value=0.0, max_value=5000.0, value=0.0,
                                    step=10.0, key="clock", **Q)
    st.title(f"{model_id} on {hw_id}")
    try:
        scenario = workloads.Scenario(**common, weight_dtype=weight_dtype, activation_dtype=act_dtype,
                                      cuda_graph=cuda_graph, tensor_parallel=int(tp), state=state,
                                      power_cap_w=cap or None, sm_clock_hz=clock_mhz * 1e6 or None)
        p = simulator.predict(hw_id, model_id, scenario, calibration=calibration)
    except ValueError as e:  # bad input, unsupported dtype, or a model / batch that does not fit
        st.error(display.error_line(e))
        st.stop()

    with st.container(horizontal=True, gap="small"):
        for m in app_view.headline_metrics(p, scenario):
            st.metric(m.label, m.value, help=m.help, width=175, border=True)
    st.caption(app_view.caption(p))

    tabs = st.tabs(["Per-op breakdown", "Roofline", "Batch sweep", "Memory", "Power cap"])
    with tabs[0]:
        ops = app_view.ops_with_launch(p)
        st.plotly_chart(app_view.ops_figure(ops), width="stretch")
        st.dataframe(app_view.ops_table(ops), width="stretch", hide_index=True)
        st.download_button("Per-op table (CSV)", ops.to_csv(index=False), file_name=f"{model_id}-{hw_id}-ops.csv",
                           mime="text/csv")
    with tabs[1]:
        st.plotly_chart(app_view.roofline_figure(p, hw_id, calibration), width="stretch")
        st.caption("Each op of prefill and of the mid-decode step at its arithmetic intensity; dashed: datasheet "
                   "ceilings, solid: the calibrated ones (× fitted GEMM and copy efficiencies).")
    with tabs[2]:
        df = app_view.batch_sweep(hw_id, model_id, scenario, calibration)
        limit = app_view.sweep_limit(df)
        if limit:
            st.warning(limit)
        st.plotly_chart(app_view.sweep_figure(df), width="stretch")
        st.dataframe(app_view.sweep_table(df), width="stretch", hide_index=True)
    with tabs[3]:
        st.plotly_chart(app_view.memory_figure(app_view.memory_breakdown_bytes(p, hw_id)), width="stretch")
    with tabs[4]:
        pw = app_view.power_sweep(hw_id, model_id, scenario, calibration)
        st.plotly_chart(app_view.power_figure(pw), width="stretch")
        st.dataframe(app_view.power_table(pw), width="stretch", hide_index=True)


def compare() -> None:
    with st.sidebar:
        st.divider()
        hws = st.multiselect("Hardware", gpus, default=list(app_compare.DEFAULT_GPUS), key="hws", **Q)
        tps = st.multiselect("Tensor parallel", [1, 2, 4, 8], default=[8], key="tps", **Q)
        wds = st.multiselect("Weight dtype", STORAGE, default=["bf16"], key="wds", **Q)
    st.title(f"Compare: {model_id}")
    if not hws or not tps or not wds:
        st.info("Pick at least one hardware, tensor-parallel degree and weight dtype.")
        st.stop()
    try:
        df = app_compare.compare_frame(hws, model_id, tps, wds, common, calibration)
    except ValueError as e:
        st.error(display.error_line(e))
        st.stop()
    for r in df[~df.fits].itertuples():
        st.error(f"{app_compare.label(r)}: {r.limit}")
    st.plotly_chart(app_compare.compare_figure(df), width="stretch")
    st.dataframe(app_compare.compare_table(df), width="stretch", hide_index=True)
    title = f"{model_id}, batch {int(batch)} × ({int(prompt)} + {int(output)}) tokens"
    with st.container(horizontal=True):
        st.download_button("Comparison (CSV)", df.to_csv(index=False), file_name="hwperf-compare.csv", mime="text/csv")
        st.download_button("Report (PNG)", app_compare.report_png(df, title), file_name="hwperf-compare.png",
                           mime="image/png")


if view == "Compare":
    compare()
else:
    explore()
