"""Decode attention (one query token per sequence) over a contiguous or paged KV cache, in Triton.

Anatomy: ``_decode_split_kernel`` and ``_decode_reduce_kernel`` → ``decode_attention`` (checks,
allocates, launches) → ``reference`` (fp32 torch). ``flops`` and ``hbm_bytes`` give the counts that
turn a measured time into an achieved rate. Nothing runs at import.

Split-KV ("flash-decoding"): decode is a pass over the KV cache, and one program per
(sequence, kv-head) leaves most SMs idle at small batch. So each sequence's context is cut into
``num_splits`` chunks; program (b, kv-head, split) computes a partial softmax-weighted sum over its
chunk plus the chunk's log-sum-exp, and a small reduce kernel merges the chunks. GQA: the program
for a kv-head loads each K/V tile once and uses it for all Hq/Hkv query heads of its group (the
group is padded to 16 rows so the scores are a tensor-core dot).

Layouts:
- contiguous: k_cache, v_cache [B, Hkv, S_max, D]; sequence b uses positions 0..context_lens[b]-1.
- paged (vLLM-style): k_cache, v_cache [n_blocks, block_size, Hkv, D] with block_table
  [B, max_blocks_per_seq] int32; token t of sequence b lives in physical block
  block_table[b, t // block_size] at slot t % block_size.
"""

import math

import torch
import triton
import triton.language as tl

from kernels._common import AUTOTUNE
from kernels._common import INTERPRET as _INTERPRET
from kernels._common import online_softmax_step, require_gpu, split_bounds
from simulator.kinds import attention_decode as _decode_kind
from simulator.kinds import attention_prefill as _attention_kind

_SUPPORTED_DTYPES = (torch.float16, torch.bfloat16)
_SUPPORTED_HEAD_DIMS = (64, 128)
_LOG2E = 1.4426950408889634
# Split chunks are whole multiples of this many tokens, so every BLOCK_N tile but a sequence's last
# is full. It must be a multiple of every BLOCK_N below.
_SPLIT_ALIGN_TOKENS = 128


def _gpu_configs() -> list[triton.Config]:
    def cfg(bn, warps, stages):
        return triton.Config({"BLOCK_N": bn}, num_warps=warps, num_stages=stages)

    return [cfg(bn, w, s) for bn in (64, 128) for w in (4, 8) for s in (2, 3, 4)]


if _INTERPRET:
    _CONFIGS = [triton.Config({"BLOCK_N": 32}, num_warps=4)]
elif not AUTOTUNE:  # quick GPU test runs: no tuning
    _CONFIGS = _gpu_configs()[:1]
else:
    _CONFIGS = _gpu_configs()


@triton.autotune(configs=_CONFIGS, key=["HEAD_DIM", "G_PAD", "PAGED", "PAGE_SIZE", "DIRECT"])
@triton.jit
def _decode_split_kernel(
    q_ptr, k_ptr, v_ptr, ctx_ptr, bt_ptr, out_ptr, lse_ptr,
    qk_scale,
    stride_qb, stride_qh,
    stride_k_seq, stride_k_head, stride_k_tok,
    stride_v_seq, stride_v_head, stride_v_tok,
    stride_bt,
    stride_ob, stride_oh, stride_os,
    stride_lb, stride_lh,
    group_size, tokens_per_split,
    HEAD_DIM: tl.constexpr, G_PAD: tl.constexpr,
    PAGED: tl.constexpr, PAGE_SIZE: tl.constexpr, DIRECT: tl.constexpr, DOT_F32: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """Program (b, kv-head, split). Contiguous: stride_*_seq steps sequences. Paged: it steps
    physical blocks and stride_*_tok steps slots inside a block."""
    b, kvh, split, lo, hi = split_bounds(ctx_ptr, tokens_per_split)

    offs_g = tl.arange(0, G_PAD)
    offs_d = tl.arange(0, HEAD_DIM)
    heads = kvh * group_size + offs_g
    g_ok = offs_g < group_size
    q = tl.load(q_ptr + b * stride_qb + heads[:, None] * stride_qh + offs_d[None, :],
                mask=g_ok[:, None], other=0.0)
    if DOT_F32:
        q = q.to(tl.float32)

    k_head = k_ptr + kvh.to(tl.int64) * stride_k_head
    v_head = v_ptr + kvh.to(tl.int64) * stride_v_head
    if not PAGED:
        k_head += b.to(tl.int64) * stride_k_seq
        v_head += b.to(tl.int64) * stride_v_seq

    m_i = tl.full([G_PAD], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([G_PAD], dtype=tl.float32)
    acc = tl.zeros([G_PAD, HEAD_DIM], dtype=tl.float32)
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        n_ok = offs_n < hi
        if PAGED:
            page = tl.load(bt_ptr + b * stride_bt + offs_n // PAGE_SIZE, mask=n_ok, other=0)
            slot = offs_n % PAGE_SIZE
            k_tok = page.to(tl.int64) * stride_k_seq + slot * stride_k_tok
            v_tok = page.to(tl.int64) * stride_v_seq + slot * stride_v_tok
        else:
            k_tok = offs_n.to(tl.int64) * stride_k_tok
            v_tok = offs_n.to(tl.int64) * stride_v_tok
        k = tl.load(k_head + k_tok[:, None] + offs_d[None, :], mask=n_ok[:, None], other=0.0)
        v = tl.load(v_head + v_tok[:, None] + offs_d[None, :], mask=n_ok[:, None], other=0.0)
        if DOT_F32:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        qk = tl.dot(q, tl.trans(k)) * qk_scale  # [G_PAD, BLOCK_N], log2 units
        qk = tl.where(n_ok[None, :], qk, float("-inf"))
        # A non-empty split's first tile has a visible key, so m_i is finite from there on.
        acc, l_i, m_i = online_softmax_step(qk, v, acc, l_i, m_i, DOT_F32)

    # An empty split (past the sequence's end) contributes weight 0: lse = -inf, partial = 0.
    nonempty = l_i > 0.0
    l_safe = tl.where(nonempty, l_i, 1.0)
    out = acc / l_safe[:, None]
    out_ptrs = out_ptr + b * stride_ob + heads[:, None] * stride_oh + split * stride_os \
        + offs_d[None, :]
    if DIRECT:
        tl.store(out_ptrs, out.to(out_ptr.dtype.element_ty), mask=g_ok[:, None])
    else:
        tl.store(out_ptrs, out, mask=g_ok[:, None])
        lse = tl.where(nonempty, m_i + tl.math.log2(l_safe), float("-inf"))
        tl.store(lse_ptr + b * stride_lb + heads * stride_lh + split, lse, mask=g_ok)


@triton.jit
def _decode_reduce_kernel(
    part_ptr, lse_ptr, o_ptr,
    stride_pb, stride_ph, stride_ps,
    stride_lb, stride_lh,
    stride_ob, stride_oh,
    num_splits,
    HEAD_DIM: tl.constexpr, SPLITS_PAD: tl.constexpr,
):
    """Program (b, q-head): o = Σ_s w_s · partial_s / Σ_s w_s with w_s = 2^(lse_s − max lse)."""
    b = tl.program_id(0)
    h = tl.program_id(1)
    offs_s = tl.arange(0, SPLITS_PAD)
    offs_d = tl.arange(0, HEAD_DIM)
    s_ok = offs_s < num_splits
    lse = tl.load(lse_ptr + b * stride_lb + h * stride_lh + offs_s, mask=s_ok,
                  other=float("-inf"))
    lse_max = tl.max(lse, 0)
    # A zero-length sequence has every lse = -inf: give it output 0 rather than NaN.
    lse_max = tl.where(lse_max == float("-inf"), 0.0, lse_max)
    w = tl.math.exp2(lse - lse_max)
    part = tl.load(part_ptr + b * stride_pb + h * stride_ph + offs_s[:, None] * stride_ps
                   + offs_d[None, :], mask=s_ok[:, None], other=0.0)
    w_sum = tl.sum(w, 0)
    o = tl.sum(part * w[:, None], 0) / tl.where(w_sum > 0.0, w_sum, 1.0)
    tl.store(o_ptr + b * stride_ob + h * stride_oh + offs_d, o.to(o_ptr.dtype.element_ty))


def _num_sms(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4  # interpreter: any small number exercises the split path


def default_num_splits(batch: int, n_kv_heads: int, max_context: int, n_sms: int) -> int:
    """Splits so that batch·n_kv_heads·splits ≈ 4 programs per SM, each with ≥ 512 tokens, ≤ 64.

    Decode is bandwidth-bound: it needs enough programs in flight to keep every SM's loads busy,
    and no more (each extra split costs a partial write and a merge; below 512 tokens a split the
    merge costs more than the parallelism gains). The rule is ``triton_splits`` of
    simulator.kinds.attention_decode, so the model times the split count that runs here.
    """
    return int(_decode_kind.triton_splits(batch, n_kv_heads, max_context, n_sms))


def _check_inputs(q, k_cache, v_cache, context_lens, block_table):
    for name, t in (("q", q), ("k_cache", k_cache), ("v_cache", v_cache),
                    ("context_lens", context_lens)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor")
    if q.ndim != 3:
        raise ValueError(f"q must be 3-D [batch, n_q_heads, head_dim], got {tuple(q.shape)}")
    if q.dtype not in _SUPPORTED_DTYPES:
        raise ValueError(f"q.dtype must be one of {_SUPPORTED_DTYPES}, got {q.dtype}")
    require_gpu("q", q)
    B, Hq, D = q.shape
    if D not in _SUPPORTED_HEAD_DIMS:
        raise ValueError(f"head_dim must be one of {_SUPPORTED_HEAD_DIMS}, got {D}")
    for name, t in (("k_cache", k_cache), ("v_cache", v_cache)):
        if t.ndim != 4:
            raise ValueError(f"{name} must be 4-D, got shape {tuple(t.shape)}")
        if t.dtype != q.dtype:
            raise ValueError(f"{name}.dtype must equal q.dtype ({q.dtype}), got {t.dtype}")
        if t.device != q.device:
            raise ValueError(f"{name} must be on q's device {q.device}, got {t.device}")
        if t.stride(3) != 1:
            raise ValueError(f"{name} must have a unit stride in head_dim, got {t.stride()}")
    if k_cache.shape != v_cache.shape:
        raise ValueError(f"k_cache and v_cache shapes differ: {tuple(k_cache.shape)} vs "
                         f"{tuple(v_cache.shape)}")
    if q.stride(2) != 1:
        raise ValueError(f"q must have a unit stride in head_dim, got {q.stride()}")
    if context_lens.shape != (B,) or context_lens.dtype != torch.int32:
        raise ValueError(f"context_lens must be int32 of shape ({B},), got "
                         f"{context_lens.dtype} {tuple(context_lens.shape)}")
    if context_lens.device != q.device:
        raise ValueError(f"context_lens must be on q's device {q.device}, got {context_lens.device}")
    if block_table is None:
        Bk, Hkv, _, Dk = k_cache.shape
        if Bk != B or Dk != D:
            raise ValueError(f"contiguous k_cache must be [B={B}, Hkv, S_max, D={D}], got "
                             f"{tuple(k_cache.shape)}")
    else:
        if not isinstance(block_table, torch.Tensor):
            raise TypeError("block_table must be a torch.Tensor or None")
        _, _, Hkv, Dk = k_cache.shape
        if Dk != D:
            raise ValueError(f"paged k_cache must be [n_blocks, block_size, Hkv, D={D}], got "
                             f"{tuple(k_cache.shape)}")
        if block_table.ndim != 2 or block_table.shape[0] != B or block_table.dtype != torch.int32:
            raise ValueError(f"block_table must be int32 of shape ({B}, max_blocks_per_seq), got "
                             f"{block_table.dtype} {tuple(block_table.shape)}")
        if block_table.device != q.device:
            raise ValueError(f"block_table must be on q's device {q.device}, got "
                             f"{block_table.device}")
    if Hkv == 0 or Hq % Hkv != 0:
        raise ValueError(f"n_q_heads ({Hq}) must be a multiple of n_kv_heads ({Hkv})")


def decode_attention(q, k_cache, v_cache, context_lens, block_table=None, sm_scale=None,
                     num_splits=None) -> torch.Tensor:
    """softmax(q Kᵀ · sm_scale) V over each sequence's first context_lens[b] cached tokens.

    Args:
        q: [B, Hq, D] float16/bfloat16, D in {64, 128}: the one new query token per sequence.
        k_cache, v_cache: contiguous [B, Hkv, S_max, D] when ``block_table`` is None, else paged
            [n_blocks, block_size, Hkv, D]; same dtype as q, unit stride along D. Hq % Hkv == 0.
        context_lens: [B] int32, tokens attended per sequence (≤ S_max, or ≤ block_size ×
            max_blocks_per_seq when paged; not checked, to avoid a device sync). 0 gives zeros.
        block_table: [B, max_blocks_per_seq] int32 physical block ids, or None (contiguous).
        sm_scale: softmax scale; default 1/sqrt(D).
        num_splits: KV chunks per sequence; None picks ``default_num_splits``.
    Returns:
        o: [B, Hq, D], same dtype as q.
    """
    _check_inputs(q, k_cache, v_cache, context_lens, block_table)
    B, Hq, D = q.shape
    paged = block_table is not None
    if paged:
        n_blocks, page_size, Hkv, _ = k_cache.shape
        max_context = block_table.shape[1] * page_size
        # [n_blocks, block_size, Hkv, D]: seq-stride = block stride, token stride = slot stride.
        k_strides = (k_cache.stride(0), k_cache.stride(2), k_cache.stride(1))
        v_strides = (v_cache.stride(0), v_cache.stride(2), v_cache.stride(1))
        bt, stride_bt = block_table, block_table.stride(0)
    else:
        _, Hkv, max_context, _ = k_cache.shape
        page_size = 1
        k_strides = (k_cache.stride(0), k_cache.stride(1), k_cache.stride(2))
        v_strides = (v_cache.stride(0), v_cache.stride(1), v_cache.stride(2))
        bt, stride_bt = context_lens, 0  # unused pointer argument
    if num_splits is None:
        num_splits = default_num_splits(B, Hkv, max_context, _num_sms(q.device))
    if not isinstance(num_splits, int) or not 1 <= num_splits <= 1024:
        raise ValueError(f"num_splits must be an int in [1, 1024], got {num_splits!r}")
    tokens_per_split = triton.cdiv(triton.cdiv(max(max_context, 1), num_splits),
                                   _SPLIT_ALIGN_TOKENS) * _SPLIT_ALIGN_TOKENS
    if sm_scale is None:
        sm_scale = 1.0 / math.sqrt(D)
    group = Hq // Hkv
    g_pad = max(16, triton.next_power_of_2(group))

    o = torch.empty((B, Hq, D), device=q.device, dtype=q.dtype)
    direct = num_splits == 1
    if direct:
        part = o.unsqueeze(2)  # [B, Hq, 1, D]: the split kernel writes the final output
        lse = o  # unused when DIRECT
        lse_strides = (0, 0)
    else:
        part = torch.empty((B, Hq, num_splits, D), device=q.device, dtype=torch.float32)
        lse = torch.empty((B, Hq, num_splits), device=q.device, dtype=torch.float32)
        lse_strides = (lse.stride(0), lse.stride(1))
    _decode_split_kernel[(B, Hkv, num_splits)](
        q, k_cache, v_cache, context_lens, bt, part, lse,
        sm_scale * _LOG2E,
        q.stride(0), q.stride(1),
        *k_strides, *v_strides,
        stride_bt,
        part.stride(0), part.stride(1), part.stride(2),
        *lse_strides,
        group, tokens_per_split,
        HEAD_DIM=D, G_PAD=g_pad, PAGED=paged, PAGE_SIZE=page_size, DIRECT=direct,
        DOT_F32=_INTERPRET and q.dtype == torch.bfloat16,
    )
    if not direct:
        _decode_reduce_kernel[(B, Hq)](
            part, lse, o,
            part.stride(0), part.stride(1), part.stride(2),
            lse.stride(0), lse.stride(1),
            o.stride(0), o.stride(1),
            num_splits,
            HEAD_DIM=D, SPLITS_PAD=max(2, triton.next_power_of_2(num_splits)),
            num_warps=4,
        )
    return o


def reference(q, k_cache, v_cache, context_lens, block_table=None, sm_scale=None,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Per-sequence softmax attention in ``dtype`` (fp32 default), gathering pages in torch."""
    B, Hq, D = q.shape
    if sm_scale is None:
        sm_scale = 1.0 / math.sqrt(D)
    out = torch.zeros((B, Hq, D), dtype=dtype, device=q.device)
    for b in range(B):
        n = int(context_lens[b])
        if n == 0:
            continue
        if block_table is None:
            k = k_cache[b, :, :n]  # [Hkv, n, D]
            v = v_cache[b, :, :n]
        else:
            page_size = k_cache.shape[1]
            pages = block_table[b, : triton.cdiv(n, page_size)].long()
            k = k_cache[pages].flatten(0, 1)[:n].transpose(0, 1)  # [Hkv, n, D]
            v = v_cache[pages].flatten(0, 1)[:n].transpose(0, 1)
        group = Hq // k.shape[0]
        k = k.to(dtype).repeat_interleave(group, dim=0)
        v = v.to(dtype).repeat_interleave(group, dim=0)
        scores = (k @ q[b].to(dtype).unsqueeze(-1)).squeeze(-1) * sm_scale  # [Hq, n]
        out[b] = torch.softmax(scores, dim=-1).unsqueeze(1).matmul(v).squeeze(1)
    return out


def flops(batch: int, context: int, n_q_heads: int, head_dim: int) -> int:
    """q·Kᵀ and p·V are each 2·ctx·D per (sequence, q-head) → 4·B·Hq·ctx·D: the model's attention
    formula (simulator.kinds.attention_prefill) with one query token, not causal."""
    return int(_attention_kind.flops(batch, 1, context, n_q_heads, head_dim, causal=False))


def hbm_bytes(batch: int, context: int, n_q_heads: int, n_kv_heads: int, head_dim: int,
              dtype_bytes: int) -> int:
    """Fewest HBM bytes: K and V caches read once (2·B·Hkv·ctx·D) plus q read and o written
    (2·B·Hq·D), the model's formula with one query token. Split partials and the block table are
    overheads, not counted."""
    return int(_attention_kind.hbm_bytes(batch, 1, context, n_q_heads, n_kv_heads, head_dim,
                                         dtype_bytes, dtype_bytes))
