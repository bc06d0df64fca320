"""Compact storage of optimizer state: 8-bit blockwise codes and bfloat16 with stochastic
rounding. Pure functions of torch tensors, the same code on every path: the eager paths call
them around a step, the compiled path traces them into its kernel (decode, update and encode
in one pass).

**int8** (blockwise dynamic quantization, after Dettmers et al., "8-bit Optimizers via
Block-wise Quantization", ICLR 2022): the state, flattened in row-major order, is cut into
blocks of :data:`BLOCK` elements; each block keeps its largest magnitude ``a`` (float32) and
one byte per element. The byte indexes a non-linear code map, denser near zero, so that a
block's small values keep their relative precision:

* signed states (``exp_avg``, ``momentum_buffer``): ``q ∈ [−127, 127]`` (int8),
  ``x = a · (q/127)·|q/127|``, encoded as ``q = round(127 · sign(y)·√|y|)``, ``y = x/a``;
  the smallest non-zero magnitude is ``a/127² ≈ 6.2e−5·a``;
* non-negative states (``exp_avg_sq``, ``sum``, ``square_avg``): ``q ∈ [0, 255]`` (uint8),
  ``x = a · (q/255)⁴``, encoded as ``q = round(255 · ⁴√y)``; the smallest non-zero value is
  ``a/255⁴ ≈ 2.4e−10·a``, so ``√x`` (an Adam denominator) keeps ``1/255²`` of ``√a``.

``round`` is to the nearest integer, ties to even, in the companded domain (``√|y|``, ``⁴√y``).
A block of zeros stores ``a = 0`` and decodes to zeros. The exponents make decoding two or
three multiplications and encoding one or two square roots, which vectorize exactly on every
path (no table search).

**bf16**: the state is kept in bfloat16 and updated in float32; the new value is rounded to
bfloat16 *stochastically* (up with probability equal to the remainder's fraction of the gap,
so the rounding is unbiased: ``E[round(x)] = x``): the 16 low bits of the float32 are dropped
after adding a 16-bit random integer. The random integer is a hash of (seed, step, state,
element index) — a counter-based generator, so a given seed gives the same numbers on every
path, on resume, and whatever else used torch's generator. Round-to-nearest would lose every
update smaller than half a bfloat16 ulp (a momentum with β = 0.999 stalls when
``(1−β)·|g − m| < 2⁻⁹·|m|``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

BLOCK = 256
"""Elements per block of int8 state (one float32 absmax each: 4/256 bytes per element)."""

SIGNED_LEVELS = 127
UNSIGNED_LEVELS = 255

_M32 = 0xFFFFFFFF
_MIX = 0x45D9F3B  # odd multiplier of a 32-bit integer hash (two multiply-xorshift rounds)


def num_blocks(numel: int) -> int:
    """Blocks of :data:`BLOCK` elements covering ``numel`` (the last one may be partial)."""
    return (numel + BLOCK - 1) // BLOCK


def as_blocks(flat: Tensor) -> Tensor:
    """A flat tensor as ``(blocks, BLOCK)``, zero-padded at the end."""
    pad = -flat.numel() % BLOCK
    return (F.pad(flat, (0, pad)) if pad else flat).view(-1, BLOCK)


def decode_blocks(codes: Tensor, absmax: Tensor, signed: bool) -> Tensor:
    """float32 values of ``codes`` shaped ``(blocks, BLOCK)`` with one ``absmax`` per block."""
    if signed:
        s = codes.float() * (1 / SIGNED_LEVELS)
        return s * s.abs() * absmax[:, None]
    s = codes.float() * (1 / UNSIGNED_LEVELS)
    s2 = s * s
    return s2 * s2 * absmax[:, None]


def encode_blocks(
    values: Tensor, signed: bool, valid: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Codes (int8 signed, uint8 unsigned) and the float32 absmax per block of ``values``
    shaped ``(blocks, BLOCK)``; ``valid`` (bool, same shape) marks the elements that count
    for the absmax (padding does not)."""
    x = values.float()
    magnitude = x.abs()
    if valid is not None:
        magnitude = torch.where(valid, magnitude, 0.0)
    absmax = magnitude.amax(dim=1)
    inverse = torch.where(absmax > 0, 1.0 / absmax, 0.0)
    y = x * inverse[:, None]
    if signed:
        q = torch.round(torch.sign(y) * torch.sqrt(y.abs()) * SIGNED_LEVELS)
        return q.to(torch.int8), absmax
    q = torch.round(torch.sqrt(torch.sqrt(y.clamp_min(0))) * UNSIGNED_LEVELS)
    return q.to(torch.uint8), absmax


def decode_int8(codes: Tensor, absmax: Tensor, dtype: torch.dtype) -> Tensor:
    """The state ``codes`` (any shape; int8 signed, uint8 unsigned) hold, as ``dtype``."""
    n = codes.numel()
    values = decode_blocks(as_blocks(codes.reshape(-1)), absmax, codes.dtype == torch.int8)
    return values.reshape(-1)[:n].view(codes.shape).to(dtype)


def encode_int8(values: Tensor, signed: bool) -> tuple[Tensor, Tensor]:
    """``values``' codes (their shape, contiguous) and absmax (one float32 per block)."""
    n = values.numel()
    codes, absmax = encode_blocks(as_blocks(values.detach().reshape(-1)), signed)
    return codes.reshape(-1)[:n].view(values.shape).clone(), absmax


def _noise16(counter: Tensor) -> Tensor:
    """16 pseudo-random bits per element of the int32 ``counter``: two rounds of
    multiply-xorshift (a 32-bit integer hash; int32 products wrap modulo 2³², as torch's
    integer arithmetic does on every device)."""
    x = counter * _MIX
    x = x ^ (x >> 16)
    x = x * _MIX
    x = x ^ (x >> 16)
    return x & 0xFFFF


def rounding_salt(seed: int, step: int, slot: int) -> int:
    """The salt of one state tensor's stochastic rounding at one step: a number of int32's
    range mixed from (seed, step, slot) (Python ints)."""
    value = 0
    for part in (seed, step, slot):
        value = (value ^ (part & _M32)) * _MIX & _M32
        value ^= value >> 16
    return value - (1 << 32) if value >= 1 << 31 else value


def state_salt(salt: int, slot: int) -> int:
    """The salt of the state at ``slot`` of a tensor whose salt is ``salt``, in int32's range."""
    value = (salt + slot) & _M32
    return value - (1 << 32) if value >= 1 << 31 else value


def stochastic_bf16(values: Tensor, salt: Tensor | int, index: Tensor) -> Tensor:
    """``values`` rounded to bfloat16 stochastically (unbiased), the random bits hashed from
    ``salt`` (int32 range) and each element's ``index`` (int32, same shape). Non-finite values
    round to nearest (their bits must not be carried into)."""
    x = values.float()
    noise = _noise16(index.to(torch.int32) + salt)
    bits = x.view(torch.int32) + noise  # (no overflow: |bits| < 0x7F81_0000)
    rounded = (bits & -0x10000).view(torch.float32)
    return torch.where(torch.isfinite(x), rounded, x).to(torch.bfloat16)


def element_index(shape: torch.Size | tuple[int, ...], device: torch.device) -> Tensor:
    """Each element's position in row-major order, as int32 (the rounding's counter)."""
    n = 1
    for size in shape:
        n *= size
    return torch.arange(n, dtype=torch.int32, device=device).view(shape)
