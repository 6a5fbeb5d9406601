"""Attention cases: prefill (causal and full) and decode (contiguous and paged KV cache), GQA layouts.

Vendor: ``F.scaled_dot_product_attention`` (native GQA where torch has it); Triton:
``kernels.attention_prefill.attention`` and ``kernels.attention_decode.decode_attention``.
"""

from __future__ import annotations

import math

from validate.runner import Group, Kernels, SweepConfig, Variant, rel_err

ATTN_LAYOUTS = ((32, 8, 128), (64, 8, 128), (32, 32, 128), (16, 16, 64))  # (Hq, Hkv, D)
PREFILL_SEQS = (512, 1024, 2048, 4096, 8192, 16384)
PREFILL_TOKENS = 16384  # batch = max(1, PREFILL_TOKENS // seq): similar work per case
DECODE_BATCHES = (1, 4, 16, 64, 256)
DECODE_CONTEXTS = (128, 512, 2048, 8192, 32768)
DECODE_LAYOUTS = ((32, 8, 128), (64, 8, 128), (32, 32, 128))
DECODE_MAX_KV_BYTES = 9e9  # K+V of one input set; larger combinations are skipped
PAGE_TOKENS = 16  # paged-cache block size (vLLM default)
LLAMA_3_8B_LAYOUT = (32, 8, 128)  # (Hq, Hkv, D) of the cases timed twice


def _sdpa(torch):
    """SDPA with native GQA where torch has it (>= 2.5), else expand KV heads (outside timing)."""
    import inspect

    F = torch.nn.functional
    try:
        native = "enable_gqa" in inspect.signature(F.scaled_dot_product_attention).parameters
    except (TypeError, ValueError):  # builtins without a signature: probe the docstring
        native = "enable_gqa" in (F.scaled_dot_product_attention.__doc__ or "")
    return F.scaled_dot_product_attention, native


def _sdpa_call(sdpa, native_gqa, q, k, v, causal):
    """A closure of SDPA over (q, k, v); without native GQA the KV heads are expanded here, outside
    the timed region."""
    hq, hkv = q.shape[1], k.shape[1]
    if native_gqa:
        return lambda: sdpa(q, k, v, is_causal=causal, enable_gqa=hq != hkv)
    ke = k.repeat_interleave(hq // hkv, dim=1)
    ve = v.repeat_interleave(hq // hkv, dim=1)
    return lambda: sdpa(q, ke, ve, is_causal=causal)


# ------------------------------------------------------------------------------------------ prefill

def prefill_groups(torch, kern: Kernels, cfg: SweepConfig) -> list[Group]:
    cases = []
    if cfg.quick:
        cases = [(1024, (32, 8, 128), True)]
    else:
        for hq, hkv, d in ATTN_LAYOUTS:
            for seq in PREFILL_SEQS:
                for causal in (True, False):
                    cases.append((seq, (hq, hkv, d), causal))
    sdpa, native_gqa = _sdpa(torch)
    groups = []
    for seq, (hq, hkv, d), causal in cases:
        batch = max(1, PREFILL_TOKENS // seq) if not cfg.quick else 2
        groups.append(_prefill_group(torch, kern, sdpa, native_gqa, batch, seq, hq, hkv, d, causal))
    return groups


def _prefill_repeated(batch, seq, layout, causal) -> bool:
    """Timed again at the end (vendor): 4 × 4096 causal tokens in the Llama-3-8B layout."""
    return (batch, seq, layout, causal) == (4, 4096, LLAMA_3_8B_LAYOUT, True)


def _prefill_group(torch, kern, sdpa, native_gqa, batch, seq, hq, hkv, d, causal) -> Group:
    dt = torch.bfloat16

    def make_set():
        q = torch.randn(batch, hq, seq, d, device="cuda", dtype=dt)
        k = torch.randn(batch, hkv, seq, d, device="cuda", dtype=dt)
        v = torch.randn(batch, hkv, seq, d, device="cuda", dtype=dt)
        return q, k, v

    def vendor(s):
        q, k, v = s
        return _sdpa_call(sdpa, native_gqa, q, k, v, causal)

    def triton_make(s):
        q, k, v = s
        attn = kern.get("attention_prefill").attention
        return lambda: attn(q, k, v, causal=causal)

    def check(s, fn):
        return rel_err(fn(), vendor(s)())

    tokens = batch * seq
    repeat = _prefill_repeated(batch, seq, (hq, hkv, d), causal)
    return Group(
        kernel="attention_prefill",
        label=f"b{batch}-s{seq}-hq{hq}-hkv{hkv}-d{d}-{'causal' if causal else 'full'}",
        dtype="bf16",
        shape={"batch": batch, "seq": seq, "n_q_heads": hq, "n_kv_heads": hkv, "head_dim": d,
               "causal": causal},
        set_bytes=(2 * hq + 2 * hkv) * tokens * d * 2,
        make_set=make_set,
        variants=[Variant("vendor", vendor, repeat=repeat),
                  Variant("triton", triton_make, module="attention_prefill")],
        counts=lambda: (
            kern.count("attention_prefill", "flops", batch, seq, hq, d, causal),
            kern.count("attention_prefill", "hbm_bytes", batch, seq, hq, hkv, d, 2),
        ),
        check=check,
    )


# ------------------------------------------------------------------------------------------- decode

def decode_groups(torch, kern: Kernels, cfg: SweepConfig) -> list[Group]:
    cases = []
    if cfg.quick:
        cases = [(1, 2048, (32, 8, 128)), (16, 2048, (32, 8, 128))]
    else:
        for hq, hkv, d in DECODE_LAYOUTS:
            for batch in DECODE_BATCHES:
                for context in DECODE_CONTEXTS:
                    if 2 * batch * hkv * context * d * 2 <= DECODE_MAX_KV_BYTES:
                        cases.append((batch, context, (hq, hkv, d)))
    sdpa, native_gqa = _sdpa(torch)
    groups = []
    for batch, context, (hq, hkv, d) in cases:
        groups.append(_decode_group(torch, kern, sdpa, native_gqa, batch, context, hq, hkv, d, False))
        groups.append(_decode_group(torch, kern, sdpa, native_gqa, batch, context, hq, hkv, d, True))
    return groups


def _decode_repeated(batch, context, layout, paged) -> bool:
    """Timed again at the end (both impls): batch 16 × 2048 tokens, Llama-3-8B layout, contiguous."""
    return (batch, context, layout, paged) == (16, 2048, LLAMA_3_8B_LAYOUT, False)


def _decode_set(torch, batch, context, hq, hkv, d, paged):
    """One decode input set: (q, k, v, lens, block table or None)."""
    dt = torch.bfloat16
    q = torch.randn(batch, hq, d, device="cuda", dtype=dt)
    lens = torch.full((batch,), context, device="cuda", dtype=torch.int32)
    if not paged:
        k = torch.randn(batch, hkv, context, d, device="cuda", dtype=dt)
        v = torch.randn(batch, hkv, context, d, device="cuda", dtype=dt)
        return q, k, v, lens, None
    n_pages = batch * math.ceil(context / PAGE_TOKENS)
    k = torch.randn(n_pages, PAGE_TOKENS, hkv, d, device="cuda", dtype=dt)
    v = torch.randn(n_pages, PAGE_TOKENS, hkv, d, device="cuda", dtype=dt)
    # Scattered physical pages, as a serving engine's allocator leaves them.
    table = torch.randperm(n_pages, device="cuda").to(torch.int32).view(batch, -1)
    return q, k, v, lens, table


def _decode_group(torch, kern, sdpa, native_gqa, batch, context, hq, hkv, d, paged) -> Group:
    def vendor(s):
        q, k, v, _, _ = s
        return _sdpa_call(sdpa, native_gqa, q.unsqueeze(2), k, v, False)  # q: [B, Hq, 1, D]

    def triton_make(s):
        q, k, v, lens, table = s
        fn = kern.get("attention_decode").decode_attention
        return lambda: fn(q, k, v, lens, block_table=table)

    def check(s, fn):
        q, k, v, lens, table = s
        if table is None:
            ref = vendor(s)().squeeze(2)
        else:  # gather the pages back into a contiguous cache for SDPA
            idx = table.long()
            kc = k[idx].flatten(1, 2)[:, :context].transpose(1, 2)  # [B, Hkv, ctx, D]
            vc = v[idx].flatten(1, 2)[:, :context].transpose(1, 2)
            ref = vendor((q, kc.contiguous(), vc.contiguous(), lens, None))().squeeze(2)
        return rel_err(fn(), ref)

    repeat = _decode_repeated(batch, context, (hq, hkv, d), paged)
    variants = [Variant("triton", triton_make, module="attention_decode", repeat=repeat)]
    if not paged:
        variants.insert(0, Variant("vendor", vendor, repeat=repeat))
    return Group(
        kernel="attention_decode",
        label=f"b{batch}-ctx{context}-hq{hq}-hkv{hkv}-d{d}",
        dtype="bf16",
        shape={"batch": batch, "context": context, "n_q_heads": hq, "n_kv_heads": hkv,
               "head_dim": d, "paged": paged},
        set_bytes=2 * batch * hkv * context * d * 2 + 2 * batch * hq * d * 2,
        make_set=lambda: _decode_set(torch, batch, context, hq, hkv, d, paged),
        variants=variants,
        counts=lambda: (
            kern.count("attention_decode", "flops", batch, context, hq, d),
            kern.count("attention_decode", "hbm_bytes", batch, context, hq, hkv, d, 2),
        ),
        check=check,
        extra_id="-paged" if paged else "",
    )
