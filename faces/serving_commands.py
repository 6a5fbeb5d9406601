"""``hwperf serve | oversubscribe | calibrate-engine``: serving over time and the row power planner.

Registered on the main CLI by ``faces.cli``. Only the command line lives here (reading traces, writing
files atomically, printing); the work is in ``simulator.serving``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

import hwspecs
from faces import display
from faces.cli_io import _print_json
from simulator.lazy import lazy_module

pd = lazy_module("pandas")
serving = lazy_module("simulator.serving")

out = Console()

ARRIVALS = ("poisson", "gamma", "diurnal", "trace")
# Column names accepted for a trace CSV: hwperf's own, or the Azure LLM inference trace's
# (https://github.com/Azure/AzurePublicDataset: TIMESTAMP, ContextTokens, GeneratedTokens).
TRACE_COLUMNS = {"arrival_s": ("arrival_s", "TIMESTAMP"), "prompt_tokens": ("prompt_tokens", "ContextTokens"),
                 "output_tokens": ("output_tokens", "GeneratedTokens")}


def read_trace(path: Path) -> serving.Requests:
    """A request trace from CSV: arrival_s, prompt_tokens, output_tokens (or the Azure trace's columns)."""
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise serving.TraceError(f"trace {path} is empty") from None
    if df.empty:
        raise serving.TraceError(f"trace {path} is empty: it has a header but no requests")
    cols = {}
    for key, names in TRACE_COLUMNS.items():
        hit = [n for n in names if n in df.columns]
        if not hit:
            raise serving.TraceError(f"trace {path} needs a column {' or '.join(names)}; it has {', '.join(df.columns)}")
        cols[key] = df[hit[0]]
    t = cols["arrival_s"]
    if not pd.api.types.is_numeric_dtype(t):  # Azure timestamps: seconds from the first request
        t = pd.to_datetime(t, errors="coerce")
        if t.isna().any():
            raise serving.TraceError(f"trace {path}: arrival times must be seconds or timestamps")
        t = (t - t.iloc[0]).dt.total_seconds()
    return serving.from_arrays(t.to_numpy(float), cols["prompt_tokens"].to_numpy(), cols["output_tokens"].to_numpy())


def make_requests(arrival, rate, duration, cv, prompt, output, prompt_cv, output_cv, trace, seed):
    if arrival not in ARRIVALS:
        raise ValueError(f"--arrival must be one of {', '.join(ARRIVALS)}, got {arrival!r}")
    if arrival == "trace":
        if trace is None:
            raise ValueError("--arrival trace needs --trace FILE.csv")
        return read_trace(trace)
    kw = dict(prompt_tokens=prompt, output_tokens=output, prompt_cv=prompt_cv, output_cv=output_cv, seed=seed)
    if arrival == "poisson":
        return serving.poisson(rate, duration, **kw)
    if arrival == "gamma":
        return serving.gamma(rate, duration, cv, **kw)
    return serving.diurnal(rate, duration, **kw)


def write_csv(path: Path, df: pd.DataFrame, flag: str) -> None:
    path = path.resolve()
    if not path.parent.is_dir():
        raise ValueError(f"{flag}: folder {path.parent} does not exist")
    hwspecs.write_atomic(path, lambda fh: df.to_csv(fh, index=False))


def _serve_table(r: serving.ServingResult, title: str) -> Table:
    s = r.summary
    t = Table(title=title)
    for c in ("metric", "P50", "P90", "P99", "mean"):
        t.add_column(c)
    for col, name in (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("e2e_s", "E2E")):
        t.add_row(name, *(display.seconds(s[f"{p}_{col}"]) for p in ("p50", "p90", "p99", "mean")))
    return t


def register(app: typer.Typer, friendly, UserError) -> None:
    register_planner(app, friendly)
    register_fleet(app, friendly)
    register_calibrate_engine(app, friendly)

    @app.command()
    @friendly
    def serve(hardware: str = typer.Option("a100-sxm4-80gb", "--hardware", "-H", help="GPU id"),
              model: str = typer.Option("llama-3-8b", "--model", "-m", help="model id or YAML path"),
              tp: int = typer.Option(1, "--tp", help="tensor-parallel GPUs per instance"),
              engine: str = typer.Option("vllm-0.6", "--engine", help="engine profile id or YAML path"),
              arrival: str = typer.Option("poisson", "--arrival", help="poisson | gamma | diurnal | trace"),
              rate: float = typer.Option(2.0, "--rate", help="requests/s (diurnal: the peak rate)"),
              duration: float = typer.Option(300.0, "--duration", help="seconds of arrivals"),
              cv: float = typer.Option(2.0, "--cv", help="gamma: coefficient of variation of the gaps"),
              prompt: int = typer.Option(1024, "--prompt", help="mean prompt tokens"),
              output: int = typer.Option(256, "--output", help="mean output tokens"),
              prompt_cv: float = typer.Option(0.0, "--prompt-cv", help="log-normal spread of prompt lengths"),
              output_cv: float = typer.Option(0.0, "--output-cv", help="log-normal spread of output lengths"),
              trace: Optional[Path] = typer.Option(None, "--trace", help="CSV: arrival_s,prompt_tokens,output_tokens"),
              chunked: bool = typer.Option(False, "--chunked-prefill", help="Sarathi-style chunked prefill"),
              budget: int = typer.Option(8192, "--token-budget", help="max tokens per iteration"),
              max_seqs: int = typer.Option(256, "--max-seqs", help="max sequences per iteration"),
              preemption: str = typer.Option("recompute", "--preemption", help="recompute | swap"),
              slo_ttft_ms: Optional[float] = typer.Option(None, "--slo-ttft-ms", help="TTFT SLO (ms) for goodput"),
              slo_tpot_ms: Optional[float] = typer.Option(None, "--slo-tpot-ms", help="TPOT SLO (ms) for goodput"),
              sm_clock: Optional[float] = typer.Option(None, "--sm-clock", help="locked SM clock (MHz)"),
              seed: int = typer.Option(0, "--seed", help="random seed of the generated arrivals and lengths"),
              disaggregate: Optional[str] = typer.Option(None, "--disaggregate",
                                                         help="P:D prefill and decode instances (KV over the link)"),
              requests_csv: Optional[Path] = typer.Option(None, "--requests-csv", help="write per-request rows"),
              series_csv: Optional[Path] = typer.Option(None, "--series-csv", help="write 1-s power/queue series"),
              as_json: bool = typer.Option(False, "--json", help="print the summary as JSON (SI units)")):
        """Serve a request stream with continuous batching: latency percentiles, goodput, power over time."""
        req = make_requests(arrival, rate, duration, cv, prompt, output, prompt_cv, output_cv, trace, seed)
        cfg = serving.SchedulerConfig(budget, max_seqs, chunked, preemption)
        ms = lambda x: None if x is None else x / 1e3  # noqa: E731
        if disaggregate:
            try:
                n_p, n_d = (int(x) for x in disaggregate.split(":"))
            except ValueError:
                raise ValueError(f"--disaggregate must be P:D (two whole numbers), got {disaggregate!r}") from None
            r = serving.serve_disaggregated(hardware, model, req, n_prefill=n_p, n_decode=n_d, tensor_parallel=tp,
                                            engine=engine, scheduler_config=cfg, slo_ttft_s=ms(slo_ttft_ms),
                                            slo_tpot_s=ms(slo_tpot_ms))
        else:
            r = serving.serve(hardware, model, req, tensor_parallel=tp, engine=engine, scheduler_config=cfg,
                              sm_clock_hz=None if sm_clock is None else sm_clock * 1e6, slo_ttft_s=ms(slo_ttft_ms),
                              slo_tpot_s=ms(slo_tpot_ms))
        if requests_csv:
            write_csv(requests_csv, r.requests, "--requests-csv")
        if series_csv:
            write_csv(series_csv, r.over_time(1.0), "--series-csv")
        if as_json:
            _print_json(r.summary)  # NaN and ±inf as null
            return
        s = r.summary
        out.print(_serve_table(r, f"{model} on {tp}× {hardware}, engine {r.engine}: {s['n_requests']} requests"))
        out.print(f"throughput {s['throughput_requests_per_s']:.2f} req/s, {s['output_tokens_per_s']:,.0f} output tok/s; "
                  f"goodput {s['goodput_requests_per_s']:.2f} req/s ({s['slo_attainment_frac']:.1%} within SLO); "
                  f"mean GPU power {s['mean_power_w']:,.0f} W, {s['energy_per_output_token_j']:.2f} J/token; "
                  f"{s['preemptions']} preemptions, peak KV {s['peak_kv_blocks']}/{r.capacity_blocks} blocks")


def write_power_png(path: Path, series: pd.DataFrame, policy, title: str) -> None:
    """Row power vs time with the policy's thresholds, written atomically (rendered in memory first)."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = path.resolve()
    if not path.parent.is_dir():
        raise ValueError(f"--png: folder {path.parent} does not exist")
    fig, ax = plt.subplots(figsize=(10, 4))
    h = series.t_s.to_numpy() / 3600.0
    ax.plot(h, 100 * series.budget_frac.to_numpy(), lw=0.5, color="tab:blue", label="row power")
    for frac, name, color in ((policy.t1_frac, "T1", "tab:orange"), (policy.t2_frac, "T2", "tab:red"),
                              (policy.brake_frac, "brake", "black")):
        ax.axhline(100 * frac, ls="--", lw=1, color=color, label=f"{name} {100 * frac:.0f}%")
    capped = series.stage.to_numpy() > 0
    ax.fill_between(h, 0, 100 * series.budget_frac.max() * 1.05, where=capped, color="tab:orange", alpha=0.12,
                    step="post", label="caps in force")
    ax.set(xlabel="time (h)", ylabel="row power (% of budget)", title=title)
    ax.legend(loc="lower right", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    hwspecs.write_atomic(path, lambda fh: fh.write(buf.getvalue()), binary=True)


def register_planner(app: typer.Typer, friendly) -> None:
    @app.command()
    @friendly
    def oversubscribe(hardware: str = typer.Option("dgx-a100-80gb", "--hardware", "-H", help="system or GPU id"),
                      model: str = typer.Option("llama-2-70b", "--model", "-m", help="model id or YAML path (hwperf list models)"),
                      budget_w: float = typer.Option(260_000.0, "--budget-w", help="row power budget (W)"),
                      servers: Optional[int] = typer.Option(None, "--servers", help="evaluate this count (no search)"),
                      tp: int = typer.Option(8, "--tp", help="GPUs per model instance"),
                      engine: str = typer.Option("vllm-0.6", "--engine", help="engine profile: kernels-only, vllm-0.2, vllm-0.6, nemo-trtllm-*, or a YAML path"),
                      non_gpu_w: float = typer.Option(2000.0, "--non-gpu-w", help="server power outside the GPUs (W)"),
                      rated_w: float = typer.Option(6500.0, "--rated-w", help="server rated power for TDP provisioning (W)"),
                      hours: float = typer.Option(24.0, "--hours", help="simulated duration (hours of 1-s samples), e.g. 24"),
                      peak_load: float = typer.Option(0.7, "--peak-load", help="load at the daily peak / capacity"),
                      prompt: float = typer.Option(1024, "--prompt", help="mean prompt tokens per request"),
                      output: float = typer.Option(256, "--output", help="mean output tokens per request"),
                      high_frac: float = typer.Option(0.5, "--high-frac", help="share of high-priority servers"),
                      t1: float = typer.Option(0.80, "--t1", help="first capping threshold, fraction of the budget (POLCA: 0.80)"),
                      t2: float = typer.Option(0.89, "--t2", help="second capping threshold, fraction of the budget (POLCA: 0.89)"),
                      hysteresis: float = typer.Option(0.05, "--hysteresis", help="uncap below threshold − this fraction of the budget"),
                      telemetry_s: float = typer.Option(2.0, "--telemetry-s", help="row power telemetry period (s)"),
                      capping_latency_s: float = typer.Option(40.0, "--capping-latency-s", help="out-of-band capping latency (s)"),
                      seed: int = typer.Option(0, "--seed", help="random seed of the arrivals"),
                      png: Optional[Path] = typer.Option(None, "--png", help="write the power-vs-time chart"),
                      series_csv: Optional[Path] = typer.Option(None, "--series-csv", help="write row power per second"),
                      as_json: bool = typer.Option(False, "--json", help="print the summary as JSON (SI units)")):
        """POLCA-style row planner: the most servers a power budget holds with no brake and SLOs met."""
        from simulator.serving.oversubscribe import oversubscribe as plan_row  # on use: keeps start-up light
        from simulator.serving.planner import PrioritySLO, RowWorkload, Server
        from simulator.serving.policy import Policy

        policy = Policy(t1_frac=t1, t2_frac=t2, hysteresis_frac=hysteresis, telemetry_period_s=telemetry_s,
                        capping_latency_s=capping_latency_s)
        w = RowWorkload(peak_load_frac=peak_load, prompt_tokens=prompt, output_tokens=output,
                        high_priority_frac=high_frac, duration_s=hours * 3600.0, seed=seed)
        plan = plan_row(hardware, model, budget_w, server=Server(8, tp, non_gpu_w, rated_w), workload=w, policy=policy,
                        slo=PrioritySLO(), engine=engine, n_servers=servers)
        s = plan.summary
        if png:
            write_power_png(png, plan.series, policy, f"{s['n_servers_max']} servers, {model}, budget "
                                                      f"{budget_w / 1e3:.0f} kW")
        if series_csv:
            write_csv(series_csv, plan.series, "--series-csv")
        if as_json:
            _print_json(s)
            return
        out.print(f"TDP provisioning: {s['n_servers_tdp']} servers; planner: {s['n_servers_max']} servers "
                  f"({s['extra_servers']:+d}, {s['extra_servers_frac']:+.0%}) with {s['brake_events']} brake events")
        out.print(f"peak {s['peak_power_frac']:.1%} / mean {s['mean_power_frac']:.1%} of budget; above T1 "
                  f"{s['time_above_t1_frac']:.1%}, above T2 {s['time_above_t2_frac']:.1%} of the time; "
                  f"{s['cap_events']} capping events")
        t = Table(title="end-to-end latency impact vs uncapped")
        for c in ("priority", "P50", "P50 impact", "P99", "P99 impact"):
            t.add_column(c)
        for p in ("high", "low"):
            t.add_row(p, display.seconds(s[f"{p}_p50_e2e_s"]), f"{s[f'{p}_p50_impact_frac']:+.1%}",
                      display.seconds(s[f"{p}_p99_e2e_s"]), f"{s[f'{p}_p99_impact_frac']:+.1%}")
        out.print(t)


def register_fleet(app: typer.Typer, friendly) -> None:
    @app.command()
    @friendly
    def fleet(hardware: str = typer.Option("dgx-a100-80gb", "--hardware", "-H", help="system or GPU id (hwperf list all)"),
              model: str = typer.Option("llama-2-70b", "--model", "-m", help="model id or YAML path"),
              rows: int = typer.Option(16, "--rows", help="rows, each its own power domain and policy"),
              servers_per_row: int = typer.Option(53, "--servers-per-row", help="servers in each row, e.g. 53"),
              budget_w: float = typer.Option(260_000.0, "--budget-w", help="power budget per row (W)"),
              hours: float = typer.Option(24.0, "--hours", help="simulated duration (hours)"),
              workers: int = typer.Option(2, "--workers", help="local Dask worker processes"),
              engine: str = typer.Option("vllm-0.6", "--engine", help="engine profile id or YAML path"),
              as_json: bool = typer.Option(False, "--json", help="print the summary as JSON (SI units)")):
        """A fleet of rows under POLCA's policy, partitioned over a local Dask cluster started here."""
        from faces.fleet import FleetSpec, run_fleet
        from simulator.serving.loadcurve import load_curves
        from simulator.serving.oversubscribe import _server_for
        from simulator.serving.planner import RowWorkload, Server, check_budget
        from simulator.serving.policy import Policy

        for name, v in (("--rows", rows), ("--servers-per-row", servers_per_row), ("--workers", workers)):
            if v < 1:
                raise ValueError(f"{name} must be ≥ 1, got {v}")
        gpu, server = _server_for(hardware, Server())
        policy, w = Policy(), RowWorkload(duration_s=hours * 3600.0)
        inst = serving.instance(gpu, model, tensor_parallel=server.tensor_parallel, engine=engine,
                                clocks_hz=policy.clocks_hz, max_context_tokens=int(w.prompt_tokens + w.output_tokens))
        curves = load_curves(inst, w.prompt_tokens, w.output_tokens, 256)
        check_budget(budget_w, curves, server)
        table, s = run_fleet(FleetSpec(curves, rows, servers_per_row, budget_w, server, w, policy), n_workers=workers)
        if as_json:
            _print_json(s)
            return
        out.print(f"{s['n_servers']:,} servers in {rows} rows × {hours:g} h on {workers} Dask workers: "
                  f"{s['compute_s']:.1f} s ({s['server_seconds_per_s']:,.0f} server-s/s); {s['brake_events']} brake "
                  f"events; capped {s['time_capped_frac']:.1%} of the time; P99 E2E high "
                  f"{display.seconds(s['high_p99_e2e_s'])}, low {display.seconds(s['low_p99_e2e_s'])}")


def register_calibrate_engine(app: typer.Typer, friendly) -> None:
    @app.command("calibrate-engine")
    @friendly
    def calibrate_engine(table: Path = typer.Option(..., "--table", help="CSV: hardware,model,tensor_parallel,batch,"
                                                    "prompt_tokens,output_tokens and e2e_s (or ttft_s,tpot_s)"),
                         base: str = typer.Option("kernels-only", "--base", help="profile giving the kernel effects"),
                         name: str = typer.Option("fitted", "--id", help="id prefix of the written profiles"),
                         holdout_tp: str = typer.Option("2", "--holdout-tp", help="TP values held out of the fit"),
                         out_dir: Optional[Path] = typer.Option(None, "--out", help="folder for <id>-<hardware>.yaml")):
        """Fit an engine profile's host times (per iteration, per sequence) to an end-to-end latency table,
        one profile per hardware (hosts differ); prints fit and held-out error per hardware column."""
        import numpy as np
        import yaml

        from simulator.serving import profile_fit as pf
        from workloads.engine_profile import EngineProfile, load_engine

        try:
            df = pd.read_csv(table, comment="#")
        except pd.errors.EmptyDataError:
            raise ValueError(f"--table {table} is empty") from None
        df = pf.check_table(df)
        held = {int(x) for x in holdout_tp.split(",") if x.strip()} if holdout_tp.strip() else set()
        profile = load_engine(base)
        k = pf.kernel_times(df, profile)
        t = Table(title=f"engine fit on {table.name} (held out: TP {sorted(held)})")
        for c in ("hardware", "iteration_fixed", "per_sequence", "fit MAPE", "held-out MAPE", "held-out max",
                  "kernels-only held-out"):
            t.add_column(c)
        docs = {}
        for hw, g in df.groupby("hardware"):
            fit = ~g.tensor_parallel.isin(held).to_numpy()
            if fit.sum() < 2 or fit.all():
                raise ValueError(f"{hw}: --holdout-tp must leave ≥ 2 rows to fit and ≥ 1 to check")
            a, b = pf.fit_host_times(g, k.loc[g.index], fit)
            o = pf.predict_table(g, k.loc[g.index], a, b)
            errs = o[[c for c in o.columns if c.startswith("err_")]].abs().to_numpy()
            kerr = o[[c for c in o.columns if c.startswith("kernel_err_")]].abs().to_numpy()
            t.add_row(hw, display.seconds(a), display.seconds(b), f"{np.mean(errs[fit]):.1%}",
                      f"{np.mean(errs[~fit]):.1%}", f"{np.max(errs[~fit]):.1%}", f"{np.mean(kerr[~fit]):.1%}")
            pid = f"{name}-{hw}"
            src = f"fitted by hwperf calibrate-engine to {table.name} ({hw}, held-out MAPE {np.mean(errs[~fit]):.1%})"
            doc = EngineProfile(**{**profile.model_dump(), "id": pid, "name": f"{name} on {hw}",
                                   "iteration_fixed_s": a, "per_sequence_s": b,
                                   "sources": {**profile.sources, "iteration_fixed_s": src, "per_sequence_s": src}})
            docs[pid] = yaml.safe_dump(doc.model_dump(exclude_none=True), sort_keys=False)
        out.print(t)
        if out_dir is not None:
            if not out_dir.is_dir():
                raise ValueError(f"--out: folder {out_dir} does not exist")
            for pid, text in docs.items():  # every profile rendered and validated before any is written
                hwspecs.write_atomic(out_dir / f"{pid}.yaml", lambda fh, text=text: fh.write(text))
                out.print(f"wrote {out_dir / f'{pid}.yaml'}")
