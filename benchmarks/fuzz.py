"""Fuzz harness (issue 14): random and adversarial inputs through the API, the CLI and the app.

Each input must end in one of two ways: success with finite, positive results (and no non-finite number
in the output), or a refusal — the API raises a ValueError, the CLI exits 2 with one line naming the
field, the app shows a message — never a traceback, never another exception, never a changed file on
failure. Anything else is counted as a crash and printed.

    python benchmarks/fuzz.py --api 10000 --cli 2000 --subprocess 200 --app 500 --seed 1

prints, per surface, the inputs tried, how they ended (ok / refused / crash) and the first crashes.
tests/test_fuzz.py runs a CI-sized slice of the same generators under hypothesis.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

import simulator  # noqa: E402
import workloads  # noqa: E402

HARDWARE = ["h100-sxm5-80gb", "a100-sxm4-80gb", "h200-sxm-141gb", "rtx-4090", "mi300x", "l40s"]
MODELS = ["llama-3-8b", "mistral-7b", "llama-2-70b", "mixtral-8x7b"]
DTYPES = ["fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "bf16", "bf16", "bf16"]  # bf16 most often
# Values a careless or hostile caller passes: wrong types, non-finite, huge, tiny, negative, fractional.
ADVERSARIAL = [0, -1, -3.5, 2.5, 1e-300, 1e300, 10**19, 10**400, float("nan"), float("inf"), -float("inf"),
               True, False, "8", "", "bf16", None, [], 2**53 + 1]


def _count(rng: random.Random, lo: int, hi: int):
    """A count: usually a valid one (log-uniform in [lo, hi]), sometimes an adversarial value."""
    if rng.random() < 0.06:
        return rng.choice(ADVERSARIAL)
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def _choice(rng: random.Random, good: list):
    return rng.choice(ADVERSARIAL) if rng.random() < 0.03 else rng.choice(good)


# ---- API ---------------------------------------------------------------------------------------------------

def _finite_positive(*values) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in values)


def _check_frame(df: pd.DataFrame, cols) -> bool:
    vals = df[list(cols)].to_numpy(dtype=float)
    return bool((pd.notna(vals) & (vals > 0) & (abs(vals) != float("inf"))).all())


def api_case(rng: random.Random):
    """(surface, description, thunk returning True when the result is finite and positive)."""
    hw, model = _choice(rng, HARDWARE), _choice(rng, MODELS)
    kind = rng.choice(["predict", "predict", "prefill", "decode_step", "context_switch", "bounds", "kernel", "sweep"])
    if kind == "predict":
        fields = {"batch": _count(rng, 1, 4096), "prompt_tokens": _count(rng, 1, 200_000),
                  "output_tokens": _count(rng, 1, 8192), "weight_dtype": _choice(rng, DTYPES),
                  "kv_dtype": _choice(rng, DTYPES), "activation_dtype": _choice(rng, DTYPES),
                  "tensor_parallel": _count(rng, 1, 16), "cuda_graph": _choice(rng, [True, False]),
                  "state": _choice(rng, ["sustained", "burst"]),
                  "power_cap_w": _choice(rng, [None, 200.0, 450.0, 700.0]),
                  "sm_clock_hz": _choice(rng, [None, 1.2e9, 1.98e9])}
        fields = {k: v for k, v in fields.items() if rng.random() < 0.6}
        via_copy = rng.random() < 0.2  # model_copy skips validation: predict must re-check

        def run():
            sc = workloads.Scenario().model_copy(update=fields) if via_copy else workloads.Scenario(**fields)
            p = simulator.predict(hw, model, sc, calibration=_choice(rng, ["auto", None]))
            return _finite_positive(p.ttft_s, p.tpot_s, p.e2e_s, p.decode_tokens_per_s, p.energy_j,
                                    p.peak_memory_bytes) and p.max_concurrency >= 0
        return kind, f"{hw} {model} {fields} copy={via_copy}", run
    if kind in ("prefill", "decode_step"):
        batch, tokens = _count(rng, 1, 512), _count(rng, 1, 100_000)
        kw = {"activation_dtype": _choice(rng, DTYPES), "tensor_parallel": _count(rng, 1, 8),
              "power_cap_w": _choice(rng, [None, 300.0]), "state": _choice(rng, ["sustained", "burst"])}
        if kind == "decode_step":
            kw["cuda_graph"] = _choice(rng, [True, False])
        kw = {k: v for k, v in kw.items() if rng.random() < 0.5}
        fn = getattr(simulator, kind)

        def run():
            r = fn(hw, model, batch, tokens, **kw)
            return _finite_positive(r.time_s, r.energy_j, r.power_w)
        return kind, f"{hw} {model} {batch} {tokens} {kw}", run
    if kind == "context_switch":
        ctx = _count(rng, 1, 1_000_000)
        kw = {"tier": _choice(rng, ["host", "ssd"]), "pinned": _choice(rng, [True, False]),
              "kv_dtype": _choice(rng, DTYPES)}

        def run():
            r = simulator.context_switch(hw, model, ctx, **kw)
            return _finite_positive(r.swap_s, r.recompute_s, r.kv_bytes)
        return kind, f"{hw} {model} {ctx} {kw}", run
    if kind == "bounds":
        ctx = rng.choice([_count(rng, 1, 1_000_000), [_count(rng, 1, 200_000) for _ in range(rng.randint(0, 3))]])
        users = _choice(rng, [None, 1, 8, 64])

        def run():
            df = simulator.long_context_bounds(hw, model, ctx, concurrent_users=users)
            return len(df) > 0 and _check_frame(df, ["prefill_s", "context_switch_s", "recompute_s"])
        return kind, f"{hw} {model} {ctx} users={users}", run
    if kind == "kernel":
        name = _choice(rng, ["gemm", "attention_prefill", "attention_decode", "copy", "h2d", "elementwise",
                             "allreduce"])
        shape = {"gemm": dict(m=_count(rng, 1, 16384), n=_count(rng, 1, 16384), k=_count(rng, 1, 16384),
                              dtype=_choice(rng, DTYPES)),
                 "attention_prefill": dict(batch=_count(rng, 1, 64), seq=_count(rng, 1, 32768),
                                           n_q_heads=_count(rng, 1, 128), n_kv_heads=_count(rng, 1, 16),
                                           head_dim=_count(rng, 32, 256)),
                 "attention_decode": dict(batch=_count(rng, 1, 256), context=_count(rng, 1, 200_000),
                                          n_q_heads=_count(rng, 1, 128), n_kv_heads=_count(rng, 1, 16),
                                          head_dim=_count(rng, 32, 256), paged=_choice(rng, [True, False])),
                 }.get(name if isinstance(name, str) else "", dict(bytes=_count(rng, 1, 10**11)))
        if name == "elementwise":
            shape = dict(n_elements=_count(rng, 1, 10**10))
        if name == "allreduce":
            shape = dict(bytes=_count(rng, 1, 10**10), n_ranks=_count(rng, 2, 64))
        kw = {"impl": _choice(rng, ["vendor", "triton"]), "state": _choice(rng, ["sustained", "burst"]),
              "launch": _choice(rng, ["graph", "eager"])}

        def run():
            return _finite_positive(simulator.predict_kernel(hw, name, **kw, **shape).time_s)
        return kind, f"{hw} {name} {shape} {kw}", run

    axes = {"batch": [_count(rng, 1, 1024) for _ in range(rng.randint(1, 4))],
            "prompt_tokens": [_count(rng, 1, 100_000) for _ in range(rng.randint(1, 3))],
            "output_tokens": [_count(rng, 1, 4096) for _ in range(rng.randint(1, 3))],
            "weight_dtype": [_choice(rng, DTYPES)], "cuda_graph": [_choice(rng, [True, False])]}
    axes = {k: v for k, v in axes.items() if rng.random() < 0.7}

    def run():
        df = simulator.sweep(hw, model, **axes)
        return _check_frame(df, ["ttft_s", "tpot_s", "e2e_s", "hbm_bytes", "flops", "peak_memory_bytes"])
    return "sweep", f"{hw} {model} {axes}", run


def run_api_case(case) -> str:
    surface, desc, run = case
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return "ok" if run() else f"crash: non-finite or non-positive result for {desc}"
    except ValueError as e:
        from faces.display import error_line
        line = error_line(e)
        return "refused" if line and "\n" not in line else f"crash: multi-line error for {desc}: {line!r}"
    except Exception as e:  # noqa: BLE001 - the harness counts every other exception as a crash
        return f"crash: {type(e).__name__}: {str(e)[:160]} for {desc}"


# ---- CLI ---------------------------------------------------------------------------------------------------

def _opt_value(rng: random.Random, good):
    if rng.random() < 0.1:
        return str(rng.choice(ADVERSARIAL + ["1:0", "1:3:0", "abc", "1,,2", "-5", "1e18", "9" * 60]))
    return str(rng.choice(good))


def cli_argv(rng: random.Random, csv_path: Path | None = None) -> list[str]:
    cmd = rng.choice(["predict", "predict", "sweep", "bounds", "kernel", "power"])
    argv = [cmd, "-H", _opt_value(rng, HARDWARE)]
    opts = {
        "predict": {"--model": MODELS, "--batch": [1, 16, 256, 4096], "--prompt-tokens": [1, 2048, 131072],
                    "--output-tokens": [1, 256, 4096], "--weight-dtype": DTYPES, "--kv-dtype": DTYPES,
                    "--activation-dtype": DTYPES, "--tensor-parallel": [1, 2, 8], "--state": ["sustained", "burst"],
                    "--power-cap": [300, 700], "--sm-clock": [1200, 1980], "--calibration": ["auto", "none"]},
        "sweep": {"--model": MODELS, "--batch": ["1,8,64", "1:32:4", "16"], "--prompt-tokens": ["128,2048", "4096"],
                  "--output-tokens": ["1,256", "64"], "--weight-dtype": ["bf16", "int8,bf16"],
                  "--kv-dtype": ["bf16", "fp8"], "--state": ["sustained", "burst,sustained"]},
        "bounds": {"--model": MODELS, "--context": ["4096,50000", "1024", "1:3"], "--kv-dtype": DTYPES,
                   "--tensor-parallel": [1, 2, 4]},
        "kernel": {"--impl": ["vendor", "triton"], "--state": ["sustained", "burst"], "--launch": ["graph", "eager"]},
        "power": {"--model": MODELS, "--caps": ["300,500,700", "400"], "--batch": [1, 16], "--prompt-tokens": [512]},
    }[cmd]
    for name, good in opts.items():
        if rng.random() < 0.5:
            argv += [name, _opt_value(rng, good)]
    if cmd == "kernel":
        kname = rng.choice(["gemm", "attention_decode", "copy", "nope"])
        argv.insert(1, kname)
        shape = {"gemm": ["m", "n", "k", "dtype"], "attention_decode": ["batch", "context", "n_q_heads", "n_kv_heads",
                                                                          "head_dim"], "copy": ["bytes"]}.get(kname, ["x"])
        for key in shape:
            if rng.random() < 0.9:
                val = rng.choice(DTYPES) if key == "dtype" else _opt_value(rng, [1, 64, 4096, 65536])
                argv += ["-s", f"{key}={val}"]
    if rng.random() < 0.3:
        argv.append("--json")
    if csv_path is not None and cmd == "sweep" and rng.random() < 0.5:
        argv += ["--csv", str(csv_path)]
    return argv


_NONFINITE = re.compile(r"(?<![\w-])(nan|NaN|inf|-inf|Infinity|-Infinity)(?![\w-])")


def judge_cli(code: int, output: str, argv: list[str], csv_path: Path | None, csv_before: bytes | None) -> str:
    if "Traceback" in output:
        return f"crash: traceback for {argv}: {output.strip().splitlines()[-1][:160]}"
    if code == 0:
        m = _NONFINITE.search(output)
        return f"crash: non-finite {m.group(0)!r} in output of {argv}" if m else "ok"
    if csv_path is not None and csv_path.read_bytes() != csv_before:
        return f"crash: --csv file changed on failure of {argv}"
    if code == 2:
        lines = output.strip().splitlines()
        if len(lines) == 1 and lines[0].startswith("error: "):
            return "refused"
        if "Usage:" in output:
            return "usage"  # click's own option-type error (its multi-line usage box)
        return f"crash: exit 2 without a one-line error for {argv}: {output.strip()[:200]!r}"
    return f"crash: exit {code} for {argv}: {output.strip()[-200:]!r}"


def run_cli_inprocess(rng: random.Random, folder: Path) -> str:
    from typer.testing import CliRunner

    from faces.cli import app
    csv_path = folder / "out.csv"
    csv_path.write_bytes(b"old\n")
    argv = cli_argv(rng, csv_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = CliRunner().invoke(app, argv)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        return f"crash: {type(res.exception).__name__}: {str(res.exception)[:160]} for {argv}"
    uses_csv = "--csv" in argv
    return judge_cli(res.exit_code, res.output, argv, csv_path if uses_csv else None, b"old\n")


def run_cli_subprocess(rng: random.Random, folder: Path) -> str:
    csv_path = folder / "out.csv"
    csv_path.write_bytes(b"old\n")
    argv = cli_argv(rng, csv_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-c", "from faces.cli import main; main()", *argv], capture_output=True,
                          text=True, env=env, timeout=120)
    return judge_cli(proc.returncode, proc.stdout + proc.stderr, argv, csv_path if "--csv" in argv else None, b"old\n")


# ---- app ---------------------------------------------------------------------------------------------------

def run_app(rng: random.Random) -> str:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    settings = {}
    for w in at.number_input:  # mostly the default; else near it, or an edge of the widget's range
        if rng.random() < 0.7:
            continue
        lo = w.proto.min if w.proto.has_min else 0
        hi = w.proto.max if w.proto.has_max else 10**6
        near = w.value * math.exp(rng.uniform(-3, 3)) if w.value else rng.uniform(lo, hi) * rng.random()
        v = min(max(rng.choice([lo, hi, near, near, near]), lo), hi)
        v = int(v) if isinstance(w.value, int) else float(v)
        w.set_value(v)
        settings[w.label] = v
    for w in at.selectbox:
        if rng.random() < 0.75:
            continue
        v = rng.choice(list(w.options))
        w.set_value(v)
        settings[w.label] = v
    for w in at.toggle:
        v = rng.random() < 0.5
        w.set_value(v)
        settings[w.label] = v
    at.run()
    if at.exception:
        return f"crash: app exception {at.exception[0].value[:200]!r} for {settings}"
    if len(at.error):
        msg = at.error[0].value
        if os.environ.get("FUZZ_VERBOSE"):
            print("   app refused:", msg[:150], settings)
        return "refused" if msg and "\n" not in msg else f"crash: multi-line app error {msg!r} for {settings}"
    shown = " ".join(m.value for m in at.metric)
    if not at.metric:
        return f"crash: neither metrics nor a message for {settings}"
    m = _NONFINITE.search(shown)
    return f"crash: non-finite metric {m.group(0)!r} for {settings}" if m else "ok"


# ---- main --------------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--api", type=int, default=10_000)
    ap.add_argument("--cli", type=int, default=2_000, help="in-process runs (typer's CliRunner)")
    ap.add_argument("--subprocess", type=int, default=200, help="real `hwperf` processes")
    ap.add_argument("--app", type=int, default=500, help="Streamlit AppTest runs")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    surfaces = [("api", args.api, lambda r, d: run_api_case(api_case(r))),
                ("cli", args.cli, run_cli_inprocess), ("cli-subprocess", args.subprocess, run_cli_subprocess),
                ("app", args.app, lambda r, d: run_app(r))]
    total_crashes = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, n, fn in surfaces:
            if n <= 0:
                continue
            rng, outcomes, crashes, t0 = random.Random(f"{args.seed}-{name}"), Counter(), [], time.time()
            for _ in range(n):
                out = fn(rng, Path(tmp))
                outcomes[out.split(":")[0]] += 1
                if out.startswith("crash"):
                    crashes.append(out)
            total_crashes += len(crashes)
            print(f"{name}: {n} inputs in {time.time() - t0:.0f} s: " + ", ".join(f"{k} {v}" for k, v in
                                                                                  sorted(outcomes.items())), flush=True)
            for c in list(dict.fromkeys(crashes))[:15]:
                print("   ", c[:400], flush=True)
    print(f"crashes: {total_crashes}")
    sys.exit(1 if total_crashes else 0)


if __name__ == "__main__":
    main()
