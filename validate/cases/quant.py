"""Cases of the compressed-path kernels: decode attention over an int8/int4/int2 KV cache
(``kernels.attention_decode_quant``) next to the bf16 Triton decode kernel at the same shapes, and the
W4A16 GEMM (``kernels.gemm_w4a16``) over Llama-3-8B's linear shapes.

Neither has a vendor library equivalent in torch, so both are Triton-only rows (impl "triton"), checked
against the torch reference over the same dequantized values. The bf16 decode rows are the comparison for
the achieved effective bandwidth (compressed bytes per second vs bf16 bytes per second). Run with
``python -m validate.quant_run`` (not part of the default sweep: it has its own short time budget).
"""

from __future__ import annotations


from validate.cases.attention import _decode_group, _sdpa
from validate.runner import Group, Kernels, SweepConfig, Variant, rel_err

QUANT_BITS = (8, 4, 2)
QUANT_GROUP = 32
QUANT_LAYOUT = (32, 8, 128)  # Llama-3-8B / Mistral-7B (Hq, Hkv, D)
QUANT_BATCHES = (1, 8, 32, 64)
QUANT_CONTEXTS = (1024, 4096, 16384, 32768)
W4A16_M = (1, 16, 64, 256, 1024, 4096)
W4A16_NK = ((4096, 4096), (6144, 4096), (28672, 4096), (4096, 14336))  # o_proj, qkv, gate_up, down


def quant_decode_groups(torch, kern: Kernels, cfg: SweepConfig) -> list[Group]:
    hq, hkv, d = QUANT_LAYOUT
    cases = [(b, c) for b in QUANT_BATCHES for c in QUANT_CONTEXTS]
    if cfg.quick:
        cases = [(8, 4096)]
    sdpa, native = _sdpa(torch)
    groups = []
    for batch, context in cases:
        groups.append(_decode_group(torch, kern, sdpa, native, batch, context, hq, hkv, d, False))
        groups += [_quant_group(torch, kern, batch, context, hq, hkv, d, bits, QUANT_GROUP) for bits in QUANT_BITS]
    return groups


def _quant_set(torch, kern, batch, context, hq, hkv, d, bits, group):
    mod = kern.get("attention_decode_quant")
    q = torch.randn(batch, hq, d, device="cuda", dtype=torch.bfloat16)
    k = mod.quantize(torch.randn(batch, hkv, context, d, device="cuda", dtype=torch.bfloat16), bits, group)
    v = mod.quantize(torch.randn(batch, hkv, context, d, device="cuda", dtype=torch.bfloat16), bits, group)
    lens = torch.full((batch,), context, device="cuda", dtype=torch.int32)
    return q, k, v, lens


def _quant_group(torch, kern, batch, context, hq, hkv, d, bits, group) -> Group:
    def make(s):
        q, k, v, lens = s
        fn = kern.get("attention_decode_quant").decode_attention_quant
        return lambda: fn(q, k, v, lens, bits)

    def check(s, fn):
        q, k, v, lens = s
        mod = kern.get("attention_decode_quant")
        kd, vd = mod.dequantize(*k, bits).to(q.dtype), mod.dequantize(*v, bits).to(q.dtype)
        ref = torch.nn.functional.scaled_dot_product_attention(
            q.unsqueeze(2), kd.repeat_interleave(hq // hkv, 1), vd.repeat_interleave(hq // hkv, 1)).squeeze(2)
        return rel_err(fn(), ref)

    kv = kern.count("attention_decode_quant", "hbm_bytes", batch, context, hq, hkv, d, bits, group) or 0
    return Group(
        kernel="attention_decode_quant", label=f"b{batch}-ctx{context}-hq{hq}-hkv{hkv}-d{d}-int{bits}-g{group}",
        dtype="bf16",
        shape={"batch": batch, "context": context, "n_q_heads": hq, "n_kv_heads": hkv, "head_dim": d, "bits": bits,
               "group_size": group},
        set_bytes=kv, make_set=lambda: _quant_set(torch, kern, batch, context, hq, hkv, d, bits, group),
        variants=[Variant("triton", make, module="attention_decode_quant")],
        counts=lambda: (kern.count("attention_decode_quant", "flops", batch, context, hq, d), kv),
        check=check,
    )


def w4a16_groups(torch, kern: Kernels, cfg: SweepConfig) -> list[Group]:
    cases = [(m, n, k) for n, k in W4A16_NK for m in W4A16_M]
    if cfg.quick:
        cases = [(16, 4096, 4096)]
    return [_w4a16_group(torch, kern, m, n, k) for m, n, k in cases]


def _w4a16_group(torch, kern, m, n, k) -> Group:
    def make_set():
        mod = kern.get("gemm_w4a16")
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        packed, scales = mod.quantize(torch.randn(n, k, device="cuda", dtype=torch.bfloat16) / k ** 0.5)
        return x, packed, scales

    def make(s):
        fn = kern.get("gemm_w4a16").gemm_w4a16
        return lambda: fn(*s)

    def check(s, fn):
        x, packed, scales = s
        return rel_err(fn(), x @ kern.get("gemm_w4a16").dequantize(packed, scales).to(x.dtype).t())

    nbytes = kern.count("gemm_w4a16", "hbm_bytes", m, n, k) or 0
    return Group(
        kernel="gemm_w4a16", label=f"m{m}-n{n}-k{k}", dtype="bf16", shape={"m": m, "n": n, "k": k},
        set_bytes=nbytes, make_set=make_set, variants=[Variant("triton", make, module="gemm_w4a16")],
        counts=lambda: (kern.count("gemm_w4a16", "flops", m, n, k), nbytes), check=check,
    )
