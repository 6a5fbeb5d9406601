"""Collectives over the scale-up link (NVLink): all-reduce, all-gather, reduce-scatter, all-to-all.

Bytes per rank, for a buffer of ``n_bytes`` per rank across t ranks (ring / pairwise algorithms, the
"bus bandwidth" convention of nccl-tests, https://github.com/NVIDIA/nccl-tests/blob/master/doc/PERFORMANCE.md):
- all-reduce of an n-byte buffer: each rank sends (and receives) 2·(t−1)/t·n; reads n, writes n;
  (t−1)/t·n/elem additions;
- all-gather to an n-byte output: each rank sends (t−1)/t·n; reads its n/t, writes n;
- reduce-scatter of an n-byte input: each rank sends (t−1)/t·n; reads n, writes n/t; (t−1)/t·n/elem adds;
- all-to-all of an n-byte buffer: each rank sends (t−1)/t·n (n/t to each peer); reads n, writes n.
Time (α–β per algorithm, the NCCL cost model: https://github.com/NVIDIA/nccl/issues/790 and
nccl-tests' PERFORMANCE.md): a fitted floor (launch + sync, ``collective_latency_s``) plus ``steps``
link latencies α (the link spec's ``latency_s``), plus the bytes each rank sends at the collective fraction
of the per-direction rate β. Steps and bytes per algorithm for t ranks and an n-byte buffer:
- ring: all-reduce 2(t−1) steps, 2(t−1)/t·n; all-gather / reduce-scatter (t−1) steps, (t−1)/t·n;
- tree (double binary tree, all-reduce): 2·⌈log2 t⌉ steps, 2·n (every rank sends and receives n up and
  down the tree) — fewer steps, more bytes: it wins for small buffers across many ranks;
- all-to-all: the t−1 peer sends run concurrently: 1 step, (t−1)/t·n.
The group's link comes from the topology (``simulator.parallel``): NVLink/NVSwitch inside a node, the
scale-out NIC (InfiniBand/RoCE) across nodes, or PCIe staged through host memory where GPUs lack peer
access (two crossings: half the rate). Without a topology in ``shape`` the scale-up link is used with no
per-step α (the floor alone), as before. The HBM side is timed as an elementwise kernel.
Parameter group: ``link``.
"""

from __future__ import annotations

import math

from hwspecs.schema import DTYPE_BYTES
from simulator.kinds.base import Op, OpKind, ShapeField, need

ALL_REDUCE, ALL_GATHER, REDUCE_SCATTER, ALL_TO_ALL = "allreduce", "all_gather", "reduce_scatter", "all_to_all"

# kind → (link bytes sent per rank per buffer byte, HBM bytes read per byte, written per byte, reduces?)
# as functions of t; one table, read by the builder.
_ACCOUNTING = {
    ALL_REDUCE: (lambda t: 2.0 * (t - 1.0) / t, lambda t: 1.0, lambda t: 1.0, True),
    ALL_GATHER: (lambda t: (t - 1.0) / t, lambda t: 1.0 / t, lambda t: 1.0, False),
    REDUCE_SCATTER: (lambda t: (t - 1.0) / t, lambda t: 1.0, lambda t: 1.0 / t, True),
    ALL_TO_ALL: (lambda t: (t - 1.0) / t, lambda t: 1.0, lambda t: 1.0, False),
}


ALGORITHMS = ("ring", "tree")


def link_bytes(kind: str, n_bytes, n_ranks, algorithm="ring"):
    """Bytes each rank sends over the link for an ``n_bytes`` buffer (see the module docstring)."""
    if kind == ALL_REDUCE and algorithm == "tree":
        return 2.0 * n_bytes
    return _ACCOUNTING[kind][0](n_ranks) * n_bytes


def steps(kind: str, n_ranks, algorithm="ring") -> float:
    """Sequential link latencies (α) of one collective (see the module docstring)."""
    if n_ranks <= 1:
        return 0.0
    if kind == ALL_TO_ALL:
        return 1.0
    if kind == ALL_REDUCE:
        return 2.0 * math.ceil(math.log2(n_ranks)) if algorithm == "tree" else 2.0 * (n_ranks - 1.0)
    return n_ranks - 1.0


def collective_op(kind: str, name: str, n_elements, n_ranks, *, act_dtype="bf16", scope="layer", n_repeats=1,
                  link: dict | None = None) -> Op:
    """One collective over a buffer of ``n_elements`` per rank in ``act_dtype``. ``link``: the group's
    ``link_bytes_per_s``, ``hop_latency_s`` and ``algorithm`` (``simulator.parallel.group_link``)."""
    _, read, written, reduces = _ACCOUNTING[kind]
    n_bytes = n_elements * DTYPE_BYTES[act_dtype]
    algorithm = (link or {}).get("algorithm", "ring")
    return Op(name=name, kind=kind, scope=scope, n_repeats=n_repeats,
              flops=n_elements * (n_ranks - 1.0) / n_ranks if reduces else 0.0,
              act_read_bytes=read(n_ranks) * n_bytes, act_write_bytes=written(n_ranks) * n_bytes, compute_dtype="fp32",
              shape={"n_ranks": n_ranks, "link_bytes": link_bytes(kind, n_bytes, n_ranks, algorithm), **(link or {})})


def allreduce_op(name, n_elements, n_ranks, *, act_dtype="bf16", scope="layer", n_repeats=1, link=None) -> Op:
    return collective_op(ALL_REDUCE, name, n_elements, n_ranks, act_dtype=act_dtype, scope=scope, n_repeats=n_repeats,
                         link=link)


def time(op: Op, hw, prm, xp, link_bytes_per_s, host_link_bytes_per_s):
    tm = op.hbm_bytes / (hw.memory_bandwidth_bytes_per_s * prm.memory.elementwise_efficiency_frac)
    sh = op.shape
    if sh["n_ranks"] <= 1:
        return 0.0, tm, prm.memory.latency_s, 0.0
    rate = need(sh.get("link_bytes_per_s", link_bytes_per_s),
                f"{op.kind} needs a scale-up link (tensor/expert parallel > 1 on {hw.id}, which has none: scaleup_link)")
    alpha = sh.get("hop_latency_s", 0.0) * steps(op.kind, sh["n_ranks"], sh.get("algorithm", "ring"))
    return 0.0, tm, prm.link.collective_latency_s + alpha, sh["link_bytes"] / (rate * prm.link.collective_efficiency_frac)


def _kind(name: str, what: str) -> OpKind:
    def build(bytes, n_ranks, dtype):
        return collective_op(name, name, bytes / DTYPE_BYTES[dtype], n_ranks, act_dtype=dtype, scope="model")

    return OpKind(name=name, help=f"{what} of a bytes buffer per rank across n_ranks GPUs over the scale-up link",
                  stage="collective", build=build, time=time,
                  shape=(ShapeField("bytes", "int"), ShapeField("n_ranks", "int"), ShapeField("dtype", "dtype", "bf16")))


KINDS = (_kind(ALL_REDUCE, "all-reduce"), _kind(ALL_GATHER, "all-gather"), _kind(REDUCE_SCATTER, "reduce-scatter"),
         _kind(ALL_TO_ALL, "all-to-all"))
