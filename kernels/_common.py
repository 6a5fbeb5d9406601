"""What the kernel files share: the interpreter switch, the device check, the online-softmax step."""

import os

import torch
import triton
import triton.language as tl

# Read once, at import, like Triton itself (TRITON_INTERPRET is read when a kernel is decorated).
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
# HWPERF_AUTOTUNE=0: one config per kernel, for quick GPU test runs (autotuning every shape is slow).
AUTOTUNE = os.environ.get("HWPERF_AUTOTUNE", "1") != "0"


def require_gpu(name: str, t: torch.Tensor) -> None:
    """Kernels launch on CUDA tensors, or on CPU tensors under the Triton interpreter."""
    if not INTERPRET and t.device.type != "cuda":
        raise ValueError(f"{name} must be a CUDA tensor (or set TRITON_INTERPRET=1), got {t.device}")


@triton.jit
def codes_as_float(packed, SHIFT: tl.constexpr, BITS: tl.constexpr, OFFSET: tl.constexpr, DT: tl.constexpr):
    """c − OFFSET, exactly, in DT (fp16 or bf16), for the BITS-bit code c at bit SHIFT of each int16-widened
    byte, without an int→float conversion: with the exponent bits of 1024 (fp16, 0x6400) or 128 (bf16,
    0x4300) OR-ed in, the 16 bits are the number 1024 + c or 128 + c (exact for c < 1024 / c < 128), and
    one subtract removes the base and the offset together."""
    c = (packed >> SHIFT) & ((1 << BITS) - 1)
    if DT == tl.bfloat16:
        return (c | 0x4300).to(tl.bfloat16, bitcast=True) - (128.0 + OFFSET)
    else:
        return (c | 0x6400).to(tl.float16, bitcast=True) - (1024.0 + OFFSET)


@triton.jit
def split_bounds(ctx_ptr, tokens_per_split):
    """Program (b, kv-head, split) of a split-KV decode kernel: (b, kv-head, split, lo, hi), its sequence,
    head and token range [lo, hi) (empty past the sequence's end)."""
    b = tl.program_id(0)
    split = tl.program_id(2)
    lo = split * tokens_per_split
    return b, tl.program_id(1), split, lo, tl.minimum(lo + tokens_per_split, tl.load(ctx_ptr + b))


@triton.jit
def online_softmax_step(qk, v, acc, l_i, m_i, DOT_F32: tl.constexpr):
    """Fold one tile of scores into the running (acc, l_i, m_i) state.

    qk: [M, N] fp32 scores in log2 units (masked entries -inf); v: [N, D] values; acc: [M, D] fp32
    unnormalised output; l_i: [M] running sum of exp2; m_i: [M] running max. The caller guarantees each
    row's first tile has a visible key, so m_i is finite afterwards and masked tiles add exp2(-inf) = 0.
    """
    m_ij = tl.maximum(m_i, tl.max(qk, 1))
    p = tl.math.exp2(qk - m_ij[:, None])
    alpha = tl.math.exp2(m_i - m_ij)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None]
    if DOT_F32:
        acc = tl.dot(p, v, acc)
    else:
        acc = tl.dot(p.to(v.dtype), v, acc)
    return acc, l_i, m_ij
