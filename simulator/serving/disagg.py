"""Prefill/decode disaggregation (Splitwise, arXiv 2311.18677; DistServe, arXiv 2401.09670): two pools
of instances, one running prompts, the other generating tokens, with each request's KV cache sent from
its prefill instance to its decode instance over a link.

Requests go round-robin to the ``n_prefill`` prefill instances (prefill-only iterations: each request
leaves after its first token), then, after the KV transfer, round-robin in order of arrival to the
``n_decode`` decode instances, where they are admitted with their KV (paged blocks of prompt + 1) and
decode with continuous batching. KV transfer time = KV bytes per GPU / (link rate × collective
efficiency): each GPU of the prefill instance sends its KV shard to its peer, in parallel.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import hwspecs
from simulator import memory
from simulator.serving import metrics, scheduler
from simulator.serving.api import ServingResult, check_reachable, check_slo, instance
from simulator.serving.arrivals import Requests, TraceError, from_arrays
from simulator.serving.scheduler import SchedulerConfig
from workloads.scenario import check_count


def kv_transfer_s(inst, prompt_tokens, link=None):
    """Seconds to move each request's prompt KV (per GPU shard) over ``link`` (default: the GPU's
    scale-up link, else its host link)."""
    s = inst.table.setups[0]
    link_id = link or s.hw.scaleup_link or s.hw.host_link
    rate = hwspecs.load(link_id).bandwidth_bytes_per_s * s.prm.link.collective_efficiency_frac
    return memory.kv_bytes_per_sequence(s, prompt_tokens, 1) / rate


def _pool(inst, req: Requests, idx, cfg, n_inst, first_token_s=None):
    """Run the requests ``idx`` (in arrival order) over ``n_inst`` instances round-robin."""
    per, rows = [], []
    for j in range(n_inst):
        sel = idx[j::n_inst]
        if len(sel) == 0:
            continue
        sub = from_arrays(req.arrival_s[sel], req.prompt_tokens[sel], req.output_tokens[sel])
        out, tl = scheduler.run(sub, inst.table, cfg, inst.capacity_blocks, 0, inst.swap,
                                None if first_token_s is None else first_token_s[sel])
        per.append((sel, out))
        rows.extend(r + (j,) for r in tl)
    return per, rows


def serve_disaggregated(hardware, model, requests: Requests, calibration="auto", *, n_prefill=1, n_decode=1,
                        tensor_parallel=1, engine="kernels-only", scheduler_config=SchedulerConfig(), link=None,
                        slo_ttft_s=None, slo_tpot_s=None) -> ServingResult:
    """Serve ``requests`` on a prefill pool and a decode pool of identical instances (see the module)."""
    n_prefill, n_decode = check_count("n_prefill", n_prefill), check_count("n_decode", n_decode)
    slo_ttft_s, slo_tpot_s = check_slo("slo_ttft_s", slo_ttft_s), check_slo("slo_tpot_s", slo_tpot_s)
    if not isinstance(requests, Requests):
        raise TraceError(f"requests must be a serving.Requests, got {type(requests).__name__}")
    ctx = int((requests.prompt_tokens + requests.output_tokens).max())
    inst = instance(hardware, model, calibration, tensor_parallel=tensor_parallel, engine=engine,
                    scheduler_config=scheduler_config, max_context_tokens=ctx)
    check_reachable(inst, requests, slo_ttft_s, slo_tpot_s)
    n = len(requests)
    first = np.full(n, np.nan)
    pre, pre_rows = _pool(inst, from_arrays(requests.arrival_s, requests.prompt_tokens, np.ones(n, np.int64)),
                          np.arange(n), scheduler_config, n_prefill)
    preempt = np.zeros(n, np.int64)
    for sel, out in pre:
        first[sel] = out["first_token_s"]
        preempt[sel] += out["n_preemptions"]
    ready = first + kv_transfer_s(inst, requests.prompt_tokens, link)
    more = np.flatnonzero(requests.output_tokens > 1)
    order = more[np.argsort(ready[more], kind="stable")]
    dec_req = Requests(ready, requests.prompt_tokens, requests.output_tokens)  # sorted per instance in _pool
    dec, dec_rows = _pool(inst, dec_req, order, scheduler_config, n_decode, first)
    finish = first.copy()
    for sel, out in dec:
        finish[sel] = out["finish_s"]
        preempt[sel] += out["n_preemptions"]
    per_req = {"arrival_s": requests.arrival_s, "prompt_tokens": requests.prompt_tokens,
               "output_tokens": requests.output_tokens, "first_token_s": first, "finish_s": finish,
               "n_preemptions": preempt, "kv_ready_s": ready}
    cols = list(scheduler.TIMELINE_COLUMNS) + ["instance"]
    tl = pd.concat([pd.DataFrame(pre_rows, columns=cols).assign(pool="prefill"),
                    pd.DataFrame(dec_rows, columns=cols).assign(pool="decode")], ignore_index=True)
    df = metrics.request_frame(per_req)
    summary = metrics.summary(df, tl, slo_ttft_s, slo_tpot_s)
    summary["mean_power_w"] = summary["energy_j"] / max(float(df.finish_s.max()), 1e-12)  # pools run side by side
    summary["mean_kv_transfer_s"] = float(np.mean(ready - first))
    return ServingResult(df, tl, summary, inst.engine_id, inst.capacity_blocks)
