"""KV-cache compression methods: each one's bytes per sequence, stated once.

A method turns the model's dense KV (``E`` elements per token: 2 · layers · kv-heads · head_dim, per GPU,
from ``ModelSpec.kv_bytes_per_token``; any architecture's per-token KV composes with it) into:

- ``resident_bytes``: what one sequence of C tokens holds in GPU memory (data + scales/zero-points +
  the full-precision residual window + any index/landmark side data) — concurrency, memory and swap;
- ``offloaded_bytes``: what it keeps in host memory instead (ShadowKV's values);
- ``step_read_bytes``: HBM bytes one decode step reads for it (attention's KV stream);
- ``step_host_bytes``: bytes one decode step fetches over the host link (ShadowKV's sparse values);
- ``step_dequant_ops``: non-tensor operations one decode step spends decompressing (CUDA cores).

Methods (papers; the parameters are each paper's default configuration):
- ``kivi-B`` (Liu et al., KIVI, arXiv 2402.02750): B ∈ {8, 4, 3, 2} bits, keys per channel and values per
  token, asymmetric, one fp16 scale + one fp16 zero-point per group of G elements (default G = 32), the
  R most recent tokens (default 128) in full precision. Bits per element:
  ``[(C − R)·(B + 2·16/G) + R·16] / C`` (C ≥ R); 2-bit, G 32, R 128 at C = 4096 → 3.406.
- ``kvquant-B`` (Hooper et al., KVQuant, arXiv 2401.18079): B-bit non-uniform codes with a per-channel
  2^B-entry fp16 lookup table, dense-and-sparse with 1% outliers kept as fp16 value + 16-bit index.
- ``h2o`` (Zhang et al., H2O, arXiv 2306.14048): keep heavy-hitter + recent tokens, a budget of
  ``budget`` tokens or ``frac`` of the context (default 20%), in the KV dtype; the rest are evicted.
- ``shadowkv`` (Sun et al., ShadowKV, arXiv 2410.21465): pre-RoPE keys as a rank-r factor (r = 160) on
  the GPU plus one landmark per 8-token chunk; values offloaded to host memory; each step reconstructs
  the keys of a sparse budget (2048 tokens) and fetches their values over the host link.
- ``minicache`` (Liu et al., MiniCache, arXiv 2405.14366): adjacent layers of the deeper half share one
  direction vector per token, each keeping a per-token magnitude; 5% of tokens retained unmerged.

Token counts may be numbers or numpy arrays (arithmetic only; ``_min`` avoids importing numpy here).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FAMILIES = ("none", "kivi", "kvquant", "h2o", "shadowkv", "minicache")
QUANT_BITS = {"kivi": (8, 4, 3, 2), "kvquant": (4, 3, 2)}
SCALE_BITS = 16  # fp16 scale and fp16 zero-point (KIVI), fp16 lookup entries and outliers (KVQuant)
INDEX_BITS = 16  # a KVQuant outlier's position within its vector


class KVMethodError(ValueError):
    """A KV-compression method that cannot be built or applied; the message names the field."""


def _min(a, b):
    """min(a, b) for numbers and numpy arrays alike."""
    return (a + b - abs(a - b)) / 2.0


class KVMethod(BaseModel):
    """One KV-compression method and its parameters (see the module docstring for each family)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    family: Literal["none", "kivi", "kvquant", "h2o", "shadowkv", "minicache"]
    bits: int | None = Field(default=None, description="quantized bits per element (kivi, kvquant)")
    group_size: int = Field(default=32, gt=0, description="elements sharing one scale + zero-point (kivi)")
    residual_tokens: int = Field(default=128, ge=0, description="recent tokens kept in full precision (kivi)")
    outlier_frac: float = Field(default=0.01, ge=0, le=1, description="kvquant dense-and-sparse outliers")
    budget_tokens: int | None = Field(default=None, gt=0, description="h2o: tokens kept (else budget_frac)")
    budget_frac: float = Field(default=0.2, gt=0, le=1, description="h2o: fraction of the context kept")
    rank: int = Field(default=160, gt=0, description="shadowkv: rank of the pre-RoPE key factor")
    chunk_tokens: int = Field(default=8, gt=0, description="shadowkv: tokens per landmark")
    sparse_tokens: int = Field(default=2048, gt=0, description="shadowkv: tokens reconstructed per step")
    merged_layer_frac: float = Field(default=0.5, ge=0, le=1, description="minicache: layers in merged pairs")
    retained_frac: float = Field(default=0.05, ge=0, le=1, description="minicache: tokens kept unmerged")

    def model_post_init(self, _):
        allowed = QUANT_BITS.get(self.family)
        if allowed is not None and self.bits not in allowed:
            raise KVMethodError(f"kv_method {self.family} bits must be one of {', '.join(map(str, allowed))}, "
                                f"got {self.bits!r}")
        if allowed is None and self.bits is not None:
            raise KVMethodError(f"kv_method {self.family} takes no bit width, got bits={self.bits}")

    @property
    def label(self) -> str:
        return self.family if self.bits is None else f"{self.family}-{self.bits}"

    # ---- checks against a model and a request ---------------------------------------------------------
    def check_model(self, head_dim: int, n_kv_heads: int) -> None:
        """Group sizes must tile a head (KIVI's per-token value groups run along head_dim); ShadowKV's
        rank must be below the key width it factors."""
        if self.family == "kivi" and head_dim % self.group_size:
            raise KVMethodError(f"kv_method group_size ({self.group_size}) must divide the model's head_dim "
                                f"({head_dim})")
        if self.family == "shadowkv" and self.rank >= n_kv_heads * head_dim:
            raise KVMethodError(f"kv_method rank ({self.rank}) must be below the key width "
                                f"n_kv_heads × head_dim ({n_kv_heads * head_dim})")

    def check_context(self, context_tokens) -> None:
        """A fixed token budget cannot exceed the request's context."""
        if self.family == "h2o" and self.budget_tokens is not None and self.budget_tokens > context_tokens:
            raise KVMethodError(f"kv_method budget_tokens ({self.budget_tokens}) is larger than the context "
                                f"({context_tokens} tokens)")

    # ---- bytes ----------------------------------------------------------------------------------------
    def effective_bits(self, context_tokens, dense_bits: float = 16.0):
        """Mean stored bits per dense KV element held on the GPU, metadata and residual window included."""
        return self.resident_frac(context_tokens, 128, 1024, dense_bits) * dense_bits

    def kept_tokens(self, context_tokens):
        """Tokens whose KV stays (H2O's budget; every token otherwise)."""
        c = context_tokens
        if self.family != "h2o":
            return c
        return _min(c, self.budget_tokens if self.budget_tokens is not None else self.budget_frac * c)

    def resident_frac(self, context_tokens, head_dim: int, key_width: int, dense_bits: float = 16.0):
        """GPU bytes of a C-token sequence over its dense bytes (dense_bits per element); ``key_width`` =
        kv-heads × head_dim of one layer."""
        c = context_tokens
        f = self.family
        if f == "kivi":
            r = _min(self.residual_tokens, c)
            quant_bits = self.bits + 2.0 * SCALE_BITS / self.group_size
            return ((c - r) * quant_bits + r * dense_bits) / _safe(c) / dense_bits
        if f == "kvquant":
            # 2^B fp16 table entries per channel per layer, amortised over the C tokens that share them
            lut_bits = 2 ** self.bits * SCALE_BITS / _safe(c)
            outlier_bits = self.outlier_frac * (SCALE_BITS + INDEX_BITS)
            return (self.bits + outlier_bits + lut_bits) / dense_bits
        if f == "h2o":
            return self.kept_tokens(c) / _safe(c)
        if f == "shadowkv":
            # per token and layer: r factor elements + one landmark key per chunk, over 2·key_width dense
            return (self.rank / key_width + 1.0 / self.chunk_tokens) / 2.0 + 0.0 * c
        if f == "minicache":
            m = self.merged_layer_frac
            pair = (1.0 + self.retained_frac + 2.0 / head_dim) / 2.0  # shared vector + 2 magnitudes + retained
            return (1.0 - m) + m * pair
        return 1.0 + 0.0 * c

    def offloaded_frac(self, context_tokens):
        """Host-memory bytes of a sequence over its dense bytes: ShadowKV's values (half the KV)."""
        return 0.5 + 0.0 * context_tokens if self.family == "shadowkv" else 0.0 * context_tokens

    def step_read_frac(self, context_tokens, head_dim: int, key_width: int, dense_bits: float = 16.0):
        """HBM bytes one decode step reads over the sequence's dense bytes. ShadowKV: every landmark, the
        rank-r rows and reconstructed keys and fetched values of the sparse budget."""
        if self.family != "shadowkv":
            return self.resident_frac(context_tokens, head_dim, key_width, dense_bits)
        c = context_tokens
        sparse = _min(self.sparse_tokens, c)
        landmark = 0.5 / self.chunk_tokens
        return landmark + sparse / _safe(c) * (0.5 * self.rank / key_width + 1.0)

    def step_host_frac(self, context_tokens):
        """Host-link bytes one decode step fetches over the sequence's dense bytes (ShadowKV's values)."""
        if self.family != "shadowkv":
            return 0.0 * context_tokens
        return 0.5 * _min(self.sparse_tokens, context_tokens) / _safe(context_tokens)

    def step_dequant_ops_per_element(self, head_dim: int) -> float:
        """Non-tensor operations per dense element the step reads: unpack + scale + shift (KIVI: 3),
        table lookup (KVQuant: 2), magnitude rescale (MiniCache: 1). ShadowKV's key reconstruction is a
        small GEMM on the tensor cores, counted as its read bytes, not here."""
        if self.family == "kivi":
            return 3.0
        if self.family == "kvquant":
            return 2.0
        if self.family == "minicache":
            return 1.0  # rescale the shared direction by its magnitude
        return 0.0



def _safe(c):
    """C, with 0 replaced by 1 so a 0-token cache gives a 0 share without dividing by zero."""
    return c + (c == 0) if not isinstance(c, (int, float)) else (c if c else 1)


NONE = KVMethod(family="none")
_OPTION_NAMES = {"group": "group_size", "residual": "residual_tokens", "budget": "budget_tokens",
                 "frac": "budget_frac", "rank": "rank", "sparse": "sparse_tokens", "chunk": "chunk_tokens",
                 "outliers": "outlier_frac", "merged": "merged_layer_frac", "retained": "retained_frac"}


def parse(text) -> KVMethod:
    """``"kivi-2"``, ``"kivi-4:group=64,residual=32"``, ``"kvquant-3"``, ``"h2o:budget=2048"``,
    ``"h2o:frac=0.1"``, ``"shadowkv"``, ``"minicache"``, ``"none"``; a ``KVMethod`` passes through."""
    if isinstance(text, KVMethod):
        return text
    if text is None:
        return NONE
    if not isinstance(text, str):
        raise KVMethodError(f"kv_method must be a method name such as kivi-2, got {text!r}")
    head, _, opts = text.strip().lower().partition(":")
    family, _, bits = head.partition("-")
    if family not in FAMILIES:
        raise KVMethodError(f"kv_method must be one of {', '.join(FAMILIES)} (kivi-8/4/3/2, kvquant-4/3/2), "
                            f"got {text!r}")
    kw: dict = {"family": family}
    if bits:
        allowed = QUANT_BITS.get(family, ())
        if not bits.isdigit() or int(bits) not in allowed:
            raise KVMethodError(f"kv_method {family} takes no bit width, got {text!r}" if not allowed else
                                f"kv_method {family} bits must be one of {', '.join(map(str, allowed))}, got {text!r}")
        kw["bits"] = int(bits)
    for item in filter(None, opts.split(",")):
        key, _, value = item.partition("=")
        if key.strip() not in _OPTION_NAMES:
            raise KVMethodError(f"kv_method option must be one of {', '.join(_OPTION_NAMES)}, got {key!r}")
        kw[_OPTION_NAMES[key.strip()]] = value.strip()
    try:
        return KVMethod(**kw)
    except KVMethodError:
        raise
    except ValueError as e:  # pydantic's ValidationError: one line naming the field
        err = e.errors()[0] if hasattr(e, "errors") else {"loc": ("?",), "msg": str(e)}
        raise KVMethodError(f"kv_method {'.'.join(map(str, err['loc']))}: {err['msg']} ({text!r})") from None
