"""A replica split over GPUs (``workloads.parallel.Parallel``): the links its groups talk over, the weights
one GPU holds, pipeline stages, and communication overlapped with compute on the op graph's critical path.

Placement: the GPUs of one pipeline stage are consecutive (tensor- and expert-parallel groups inside a node
when they fit), stages follow each other; a group larger than a node, or a stage boundary between nodes,
crosses the scale-out link (one NIC per GPU: InfiniBand / RoCE). Where GPUs lack peer access (consumer
cards), a transfer is staged through host memory: two PCIe crossings, half the host link's rate.

Pipeline (GPipe schedule; the bubble (p − 1)/(m + p − 1), arXiv 1811.06965 §2.2): a pass of ``m``
micro-batches over ``p`` stages takes (m + p − 1) · t_stage, where t_stage = t_pass(B/m)/p (the pass of one
micro-batch through all layers, evenly cut — the heaviest stage of an uneven cut is ceil(L/p)/(L/p) of
that) plus the boundary transfer of one micro-batch's hidden states (tokens × hidden × activation bytes).
Decode runs steady-state with micro-batches in flight at different steps (vLLM's virtual engines), so a
step takes max(m, p) · t_stage: no bubble once m ≥ p, idle stages when m < p.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

import hwspecs
from hwspecs.schema import DTYPE_BYTES, System
from simulator.kinds.collective import ALGORITHMS, ALL_GATHER, ALL_REDUCE, ALL_TO_ALL, REDUCE_SCATTER
from simulator.lazy import lazy_module
from simulator.quant import bytes_per_weight, kept_dtype
from workloads.model import ModelSpec
from workloads.parallel import SINGLE, Parallel

nx = lazy_module("networkx")  # on use (overlapped layers only): keeps `hwperf predict` start-up light

COLLECTIVE_KINDS = (ALL_REDUCE, ALL_GATHER, REDUCE_SCATTER, ALL_TO_ALL)


@dataclass(frozen=True)
class Topology:
    """Links between the GPUs of one system (per direction)."""

    gpus_per_node: int | None  # None: a single-GPU spec, as many GPUs as asked, all in one node
    intra_bytes_per_s: float | None
    intra_latency_s: float
    inter_bytes_per_s: float | None = None
    inter_latency_s: float = 0.0
    n_gpus: int | None = None


def topology(hardware) -> Topology:
    """The topology of a hardware argument (a System id/path/spec, or one GPU)."""
    spec = hardware
    if isinstance(hardware, str) or hasattr(hardware, "__fspath__"):
        spec = hwspecs.load(hardware)
    gpu = hwspecs.resolve_hardware(spec)
    if not isinstance(spec, System):
        link = hwspecs.load(gpu.scaleup_link) if gpu.scaleup_link else None
        return Topology(None, gpu.scaleup_bandwidth_bytes_per_s, link.latency_s if link else 0.0)
    link_id = spec.scaleup_link or gpu.scaleup_link
    if link_id is not None:
        link = hwspecs.load(link_id)
        rate, lat = gpu.scaleup_bandwidth_bytes_per_s or link.bandwidth_bytes_per_s, link.latency_s
    else:  # PCIe through the host: peer-to-peer, or staged in host memory (two crossings)
        host = hwspecs.load(gpu.host_link)
        rate = host.bandwidth_bytes_per_s / (1.0 if spec.peer_access else 2.0)
        lat = host.latency_s * (1.0 if spec.peer_access else 2.0)
    out = None if spec.scaleout_link is None else hwspecs.load(spec.scaleout_link)
    return Topology(spec.gpus_per_node, rate, lat, out.bandwidth_bytes_per_s if out else None,
                    out.latency_s if out else 0.0, spec.n_accelerators)


@lru_cache(maxsize=64)
def _topology_by_id(hardware: str) -> Topology:
    return topology(hardware)


def group_link(topo: Topology, n_ranks: int, algorithm: str = "ring") -> dict:
    """``collective_op`` link fields for a group of ``n_ranks`` consecutive GPUs: the intra-node link, or
    the scale-out NIC when the group spans nodes (a ring's slowest hop sets its rate)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"collective_algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    spans = topo.gpus_per_node is not None and n_ranks > topo.gpus_per_node
    rate, lat = (topo.inter_bytes_per_s, topo.inter_latency_s) if spans else (topo.intra_bytes_per_s,
                                                                                 topo.intra_latency_s)
    if rate is None:
        return {"algorithm": algorithm, "hop_latency_s": lat}
    return {"link_bytes_per_s": rate, "hop_latency_s": lat, "algorithm": algorithm}


def stage_link(topo: Topology, par: Parallel) -> tuple[float | None, float]:
    """(rate, latency) of the slowest pipeline-stage boundary."""
    crosses = topo.gpus_per_node is not None and par.n_gpus > topo.gpus_per_node
    if crosses and topo.inter_bytes_per_s is not None:
        return topo.inter_bytes_per_s, topo.inter_latency_s
    return topo.intra_bytes_per_s, topo.intra_latency_s


def links(topo: Topology, par: Parallel, algorithm: str = "ring") -> dict:
    return {"tp": group_link(topo, par.tensor_parallel, algorithm), "ep": group_link(topo, par.expert_parallel)}


# ---- weights per GPU ------------------------------------------------------------------------------------

def _layer_params_per_gpu(m: ModelSpec, g, par: Parallel) -> float:
    """One layer of group ``g`` on one GPU: norms replicated, attention / t, dense MLP and shared experts / t,
    router replicated, routed experts / (GPUs of the stage)."""
    t, h = par.tensor_parallel, m.hidden
    norms = (4 if m.sandwich_norm else 2) * m.norm_params
    mlp = g.mlp
    if not mlp.is_moe:
        ffn = mlp.params_with_hidden(h) / t
    else:
        router = h * mlp.n_experts + mlp.n_experts * mlp.router_bias
        shared = mlp.n_shared_experts * mlp.expert_params(h, mlp.shared_width)
        ffn = router + shared / t + mlp.n_experts * mlp.expert_params(h) / par.gpus_per_stage
    return norms + g.attention.params_with_hidden(h) / t + ffn


def weight_bytes_per_gpu(m: ModelSpec, par: Parallel, weight_dtype: str) -> float:
    """Stored weight bytes on the GPU of the heaviest pipeline stage (layers cut in order, ceil(L/p) on the
    first stages; the embedding on the first stage, final norm and LM head on the last; both vocab-split
    over t and kept 16-bit under quantization as in ``simulator.quant``)."""
    p, L = par.pipeline_parallel, m.n_layers
    per_layer = [(g.n_layers, _layer_params_per_gpu(m, g, par)) for g in m.groups]
    layer_of = [w for n, w in per_layer for _ in range(n)]
    cuts = np.linspace(0, L, p + 1).round().astype(int) if p > 1 else np.array([0, L])
    edge = DTYPE_BYTES[kept_dtype(weight_dtype)] / par.tensor_parallel
    stages = []
    for j in range(p):
        layers = sum(layer_of[cuts[j]:cuts[j + 1]]) * bytes_per_weight(weight_dtype)
        layers += edge * (m.embedding_params if j == 0 else 0) + edge * (m.lm_head_params if j == p - 1 else 0)
        layers += m.norm_params * bytes_per_weight(weight_dtype) * (j == p - 1)
        stages.append(layers)
    return max(stages)


# ---- pipeline -------------------------------------------------------------------------------------------

def pipelined(result, par: Parallel, phase: str, boundary, idle_w: float = 0.0, n_micro: int | None = None):
    """A pass of one micro-batch through all layers (a ``PhaseResult``, or a decode ``DecodeTotal``) → the
    pipelined pass of the batch: (m + p − 1)·(t/p + boundary) for prefill, max(m, p)·(t/p + boundary) for
    decode. Each GPU does m/p of the micro-batch's work: its energy is m/p of it plus idle power over the
    rest of the longer time."""
    p = par.pipeline_parallel
    m = par.n_micro_batches if n_micro is None else n_micro
    if p == 1 and m == 1:
        return result
    factor = float(m + p - 1) if phase == "prefill" else float(max(m, p))
    time = factor * (result.time_s / p + boundary)
    energy = result.energy_j * m / p + idle_w * np.maximum(time - result.time_s * m / p, 0.0)
    fields = {"time_s": time, "energy_j": energy, "flops": result.flops * m / p,
              "hbm_bytes": result.hbm_bytes * m / p}
    if hasattr(result, "power_w"):
        fields["power_w"] = energy / time
    return replace(result, **fields)


# ---- overlap on the op graph ----------------------------------------------------------------------------

def layer_graph(ops, overlap: bool, n_unrolled: int = 3) -> nx.DiGraph:
    """One layer's ops [(Op, time_s)] unrolled ``n_unrolled`` times as a DAG weighted by op time. Without
    overlap every op waits for the one before it. With overlap (Ladder Residual, arXiv 2501.06589;
    TokenWeave, arXiv 2505.11329) a collective runs on its own stream beside the compute (collectives
    still follow each other): the compute after it waits for it only one block later, where the residual
    stream it feeds is read."""
    g = nx.DiGraph()
    prev_compute = prev_comm = None
    pending: list = []
    for r in range(n_unrolled):
        for i, (op, t) in enumerate(ops):
            node = (r, i)
            g.add_node(node, time_s=t)
            if prev_compute is not None:
                g.add_edge(prev_compute, node)
            if overlap and op.kind in COLLECTIVE_KINDS:
                if prev_comm is not None:
                    g.add_edge(prev_comm, node)
                prev_comm = node
                pending.append(node)
                continue
            if overlap and len(pending) > 1:
                g.add_edge(pending.pop(0), node)
            prev_compute = node
    return g


def critical_path_s(g: nx.DiGraph) -> float:
    """Longest path through the DAG, by node time."""
    best: dict = {}
    for node in nx.topological_sort(g):
        best[node] = g.nodes[node]["time_s"] + max((best[u] for u in g.predecessors(node)), default=0.0)
    return max(best.values(), default=0.0)


def _per_layer_s(ops, overlap: bool) -> float:
    """Steady-state time of one more layer: critical path of 3 unrolled layers minus that of 2."""
    return critical_path_s(layer_graph(ops, overlap, 3)) - critical_path_s(layer_graph(ops, overlap, 2))


def hidden_comm_s(pairs) -> float:
    """GPU time hidden by overlapping collectives with compute: per layer group, (serial − overlapped)
    steady-state layer time from the critical path of its op graph, times the group's layers."""
    groups: dict[str, list] = {}
    for op, t in pairs:
        if op.scope == "layer":
            groups.setdefault(op.name.rpartition(".")[0], []).append((op, t))
    hidden = 0.0
    for group in groups.values():
        if not any(op.kind in COLLECTIVE_KINDS for op, _ in group):
            continue
        ops = [(op, float(np.max(t.time_s))) for op, t in group]
        hidden += max(_per_layer_s(ops, False) - _per_layer_s(ops, True), 0.0) * group[0][0].n_repeats
    return hidden


def check(par: Parallel, model: ModelSpec, hardware, topo: Topology) -> Parallel:
    """Degrees against the model and the system's GPU count (``Parallel.check``), and links present."""
    par.check(model, topo.n_gpus, str(getattr(hardware, "id", hardware)))
    if par.n_gpus > 1 and topo.intra_bytes_per_s is None and topo.inter_bytes_per_s is None:
        raise ValueError(f"{par.describe()} needs a link between GPUs, and {hardware} has none (scaleup_link)")
    return par


# ---- the split applied to a Setup and to its passes -----------------------------------------------------

def attach(s, hardware, par: Parallel | None = None, algorithm: str = "ring"):
    """``s`` with its split and links (unchanged for one GPU). ``hardware``: the API's hardware argument
    (a System gives node sizes and the scale-out link)."""
    if par is None:
        if s.tp == 1:
            return s
        par = Parallel(tensor_parallel=s.tp)
    if par.tensor_parallel != s.tp:
        raise ValueError(f"tensor_parallel={s.tp} disagrees with the split's {par.tensor_parallel}")
    if par == SINGLE:
        return s
    topo = _topology_by_id(hardware) if isinstance(hardware, str) else topology(hardware)
    check(par, s.model, hardware, topo)
    if par.n_gpus == 1:
        return s
    return replace(s, par=par, links={**links(topo, par, algorithm), "pp": stage_link(topo, par)})


def kv_share(s) -> float:
    """Share of a sequence's KV one GPU holds, averaged over the data-parallel attention groups: the
    heaviest pipeline stage's layers, over the groups that each hold their own sequences."""
    par = s.par
    if par is None:
        return 1.0
    return par.stage_layers(s.model.n_layers) / s.model.n_layers / par.attention_dp


def activation_share(s) -> float:
    """Share of a pass's activations one GPU holds: its data-parallel attention group's sequences, one
    pipeline micro-batch at a time."""
    if s.par is None:
        return 1.0
    return 1.0 / (s.par.attention_dp * s.par.n_micro_batches)


def _micro(s, batch) -> int:
    return max(1, min(s.par.n_micro_batches, int(np.min(batch)))) if s.par is not None else 1


def _boundary(s, tokens):
    if s.par is None or s.par.pipeline_parallel == 1:
        return 0.0
    rate, lat = s.links["pp"]
    if rate is None:
        raise ValueError("pipeline_parallel > 1 needs a link between GPUs (scaleup_link or a system spec)")
    return lat + np.asarray(tokens, dtype=float) * s.model.hidden * DTYPE_BYTES[s.stream_dtype] / rate


def _overlapped(result, pairs, s, n_steps=1.0):
    if s.par is None or not s.par.overlap_comm:
        return result
    return replace(result, time_s=result.time_s - n_steps * hidden_comm_s(pairs))


def prefill(s, batch, prompt_tokens):
    """Prefill of the batch over the split: micro-batches through the pipeline, collectives overlapped
    when asked."""
    from simulator import engine  # the engine imports nothing of this module; keep the graph one-way
    m = _micro(s, batch)
    pf = engine.prefill(s, batch / m if m > 1 else batch, prompt_tokens)
    pf = _overlapped(pf, pf.pairs, s)
    if s.par is None:
        return pf
    return pipelined(pf, s.par, "prefill", _boundary(s, batch / m * prompt_tokens), s.pm.idle_w, m)


def decode(s, batch, prompt_tokens, output_tokens, cuda_graph):
    """(coefficients, decode total, mid-step function) over the split."""
    from simulator import decode as dec_mod
    m = _micro(s, batch)
    b = batch / m if m > 1 else batch
    co = dec_mod.decode_coeffs(s, b)
    total = dec_mod.decode_total(s, co, prompt_tokens, output_tokens, cuda_graph)
    total = _overlapped(total, co.pairs0, s, total.steps)
    if s.par is not None:
        total = pipelined(total, s.par, "decode", total.steps * _boundary(s, b), s.pm.idle_w, m)

    def mid():
        step = dec_mod.decode_step_at(s, co, prompt_tokens + max(output_tokens // 2, 1), cuda_graph)
        step = _overlapped(step, step.pairs, s)
        return step if s.par is None else pipelined(step, s.par, "decode", _boundary(s, b), s.pm.idle_w, m)
    return co, total, mid


__all__ = ["Topology", "attach", "check", "critical_path_s", "group_link", "hidden_comm_s", "layer_graph",
           "links", "pipelined", "prefill", "decode", "kv_share", "topology", "weight_bytes_per_gpu"]
