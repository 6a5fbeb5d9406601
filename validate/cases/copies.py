"""Byte movers: device copy, host↔device copies, KV-block gather and scatter.

Vendor: ``Tensor.copy_``, ``torch.index_select``, ``Tensor.index_copy_``; Triton: ``kernels.kv_copy``
(``stream_copy``, ``gather_blocks``, ``scatter_blocks``). Host copies have a vendor variant only.
"""

from __future__ import annotations

import math
from typing import Any

from validate.cases.attention import PAGE_TOKENS
from validate.runner import Group, Kernels, SweepConfig, Variant

COPY_BYTES = tuple(2**20 * 4**i for i in range(7))  # 1 MiB … 4 GiB
HOST_BYTES = tuple(2**20 * 4**i for i in range(6))  # 1 MiB … 1 GiB
KV_BLOCK_SHAPE = (PAGE_TOKENS, 8, 128)  # one KV block: 16 tokens × 8 kv heads × 128 dims, bf16
KV_CACHE_BLOCKS = 65536  # 65536 × 32 KiB = 2 GiB cache
KV_GATHER_BLOCKS = (16, 128, 1024, 8192, 32768)
GIB = 2**30
REPEAT_BYTES = (GIB, 64 * 2**20)  # copy sizes timed twice (device copy, pinned h2d)


# ---------------------------------------------------------------------------------- device copy

def copy_groups(torch, kern: Kernels, cfg: SweepConfig) -> list[Group]:
    sizes = (64 * 2**20,) if cfg.quick else COPY_BYTES
    groups = []
    for nbytes in sizes:
        def make_set(nbytes=nbytes):
            src = torch.randn(nbytes // 2, device="cuda", dtype=torch.bfloat16)
            return src, torch.empty_like(src)

        def vendor(s):
            src, dst = s
            return lambda: dst.copy_(src)

        def triton_make(s):
            src, dst = s
            fn = kern.get("kv_copy").stream_copy
            return lambda: fn(src, dst)

        def check(s, fn):
            src, dst = s
            dst.fill_(float("nan"))  # poison: every element must be written
            fn()
            return 0.0 if torch.equal(dst, src) else float("inf")

        groups.append(Group(
            kernel="copy", label=f"bytes{nbytes}", dtype=None, shape={"bytes": nbytes},
            set_bytes=2 * nbytes, make_set=make_set,
            variants=[Variant("vendor", vendor, repeat=nbytes in REPEAT_BYTES),
                      Variant("triton", triton_make, module="kv_copy")],
            counts=lambda nbytes=nbytes: (None, 2 * nbytes), check=check,
            headline="copy_{impl}_1gib_bytes_per_s" if nbytes == GIB else "",
        ))
    return groups


# ----------------------------------------------------------------------------------- host copies

def _host_headline(direction: str, pinned: bool, nbytes: int) -> str:
    """1 GiB pinned copies both ways and the pageable h2d are headline numbers."""
    if nbytes != GIB or not (pinned or direction == "h2d"):
        return ""
    return f"{direction}_{'pinned' if pinned else 'pageable'}_1gib_bytes_per_s"


def host_groups(torch, kern: Kernels, cfg: SweepConfig) -> list[Group]:
    """Host↔device copies; one variant (vendor), pinned and pageable host buffers."""
    sizes = (64 * 2**20,) if cfg.quick else HOST_BYTES
    groups = []
    for direction in ("h2d", "d2h"):
        for pinned in (True, False):
            for nbytes in sizes:
                def make_set(nbytes=nbytes, pinned=pinned):
                    dev = torch.randn(nbytes // 2, device="cuda", dtype=torch.bfloat16)
                    host = torch.empty(nbytes // 2, dtype=torch.bfloat16, pin_memory=pinned)
                    host.copy_(dev)  # touch every page (a pageable buffer is lazily mapped)
                    return host, dev

                def vendor(s, direction=direction, pinned=pinned):
                    host, dev = s
                    if direction == "h2d":
                        return lambda: dev.copy_(host, non_blocking=pinned)
                    return lambda: host.copy_(dev, non_blocking=pinned)

                repeat = direction == "h2d" and pinned and nbytes in REPEAT_BYTES
                groups.append(Group(
                    kernel=direction, label=f"{'pinned' if pinned else 'pageable'}-bytes{nbytes}",
                    dtype=None, shape={"bytes": nbytes, "pinned": pinned},
                    set_bytes=nbytes, make_set=make_set,
                    variants=[Variant("vendor", vendor, graph_ok=False, repeat=repeat)],
                    counts=lambda nbytes=nbytes: (None, nbytes), rotate=False,
                    headline=_host_headline(direction, pinned, nbytes),
                ))
    return groups


# -------------------------------------------------------------------------------- KV gather/scatter

def _kv_group(kernel, n_blocks, payload, make_set, vendor, triton_make, check) -> Group:
    return Group(
        kernel=kernel, label=f"blocks{n_blocks}-bytes{payload}", dtype=None,
        shape={"bytes": payload}, set_bytes=2 * payload, make_set=make_set,
        variants=[Variant("vendor", vendor), Variant("triton", triton_make, module="kv_copy")],
        counts=lambda: (None, 2 * payload), check=check,
    )


def kv_groups(torch, kern: Kernels, cfg: SweepConfig) -> list[Group]:
    """Gather/scatter of scattered KV blocks out of / into one large paged cache."""
    counts = (1024,) if cfg.quick else KV_GATHER_BLOCKS
    total_blocks = 8192 if cfg.quick else KV_CACHE_BLOCKS
    cache_holder: dict[str, Any] = {}

    def cache():
        if "cache" not in cache_holder:
            cache_holder["cache"] = torch.randn(total_blocks, *KV_BLOCK_SHAPE, device="cuda",
                                                dtype=torch.bfloat16)
        return cache_holder["cache"]

    groups = []
    for n_blocks in counts:
        payload = n_blocks * math.prod(KV_BLOCK_SHAPE) * 2
        groups.append(_kv_group("kv_gather", n_blocks, payload, *_gather(torch, kern, cache, n_blocks,
                                                                         total_blocks)))
        groups.append(_kv_group("kv_scatter", n_blocks, payload, *_scatter(torch, kern, cache,
                                                                           n_blocks, total_blocks)))
    return groups


def _gather(torch, kern, cache, n_blocks, total_blocks):
    """(make_set, vendor, triton, check) of gathering ``n_blocks`` random blocks of the cache."""
    def make_set():
        ids = torch.randperm(total_blocks, device="cuda")[:n_blocks].to(torch.int32)
        out = torch.empty(n_blocks, *KV_BLOCK_SHAPE, device="cuda", dtype=torch.bfloat16)
        return cache(), ids, out

    def vendor(s):
        c, ids, out = s
        return lambda: torch.index_select(c, 0, ids, out=out)

    def triton_make(s):
        c, ids, out = s
        fn = kern.get("kv_copy").gather_blocks
        return lambda: fn(c, ids, out=out)

    def check(s, fn):
        c, ids, out = s
        out.fill_(float("nan"))
        res = fn()
        res = out if res is None else res
        return 0.0 if torch.equal(res, c[ids.long()]) else float("inf")

    return make_set, vendor, triton_make, check


def _scatter(torch, kern, cache, n_blocks, total_blocks):
    """(make_set, vendor, triton, check) of scattering ``n_blocks`` blocks into random places."""
    def make_set():
        ids = torch.randperm(total_blocks, device="cuda")[:n_blocks].to(torch.int32)
        src = torch.randn(n_blocks, *KV_BLOCK_SHAPE, device="cuda", dtype=torch.bfloat16)
        return src, cache(), ids

    def vendor(s):
        src, c, ids = s
        ids64 = ids.long()  # index_copy_ wants int64; converted outside the timed region
        return lambda: c.index_copy_(0, ids64, src)

    def triton_make(s):
        src, c, ids = s
        fn = kern.get("kv_copy").scatter_blocks
        return lambda: fn(src, c, ids)

    def check(s, fn):
        src, c, ids = s
        c[ids.long()] = float("nan")
        fn()
        return 0.0 if torch.equal(c[ids.long()], src) else float("inf")

    return make_set, vendor, triton_make, check
