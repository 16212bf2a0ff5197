"""The MBConv baseline as data: block strings and their decoded form.

A block string describes one stage of MBConv blocks in the reference's notation
(Tan & Le 2019, Table 1; the official TPU code's `BlockDecoder`; for V2 google/automl
`efficientnetv2/effnetv2_configs.py`), tokens joined by `_`:

    r<repeats>        number of blocks in the stage (before depth scaling)
    k<kernel>         depthwise (fused: regular) kernel size
    s<sy><sx> | s<s>  stride of the first block: `s11`/`s22` (V1 reference) or `s1`/`s2`
                      (V2 reference); both mean the same, the spelling is kept for encoding
    e<expand>         expansion ratio of the inverted bottleneck
    i<in>, o<out>     input and output channels (before width scaling)
    c1                Fused-MBConv (V2): the 1x1 expansion and the depthwise kxk are one
                      regular kxk convolution; without it the stage is MBConv
    se<ratio>         squeeze-excitation ratio in (0, 1], relative to the block's input
                      channels (without it: no squeeze-excitation)
    noskip            no identity skip (and so no stochastic depth) in this stage

Examples: `r2_k3_s22_e6_i16_o24_se0.25` (V1), `r4_k3_s2_e4_i24_o48_c1` (V2-S stage 2).

The reference encoders also write flags at their default value, which change nothing and are
accepted: tensorflow/tpu's `BlockDecoder._encode_block_string`
(models/official/efficientnet/efficientnet_builder.py) writes `c0` (conv type: MBConv), `f0`
(no fused conv) and `p0` (no super-pixel) after `o`, as in
`r1_k3_s11_e1_i32_o16_c0_f0_p0_se0.25`; google/automl's (efficientnetv2/effnetv2_configs.py)
writes `c0` (or `c1`) and `f0` the same way, with one-digit strides. Other values of `f` and
`p` (tensorflow/tpu's fused-conv and super-pixel blocks), its CondConv flag `cc`, and `c1` in
a string from its encoder (one with a `p` token: there `c1` is EdgeTPU's block without
depthwise convolution, not Fused-MBConv) are not built here and are refused.

Decoding is strict: an unknown, repeated or redundant token, or a value we don't build, raises
`ValueError` naming the token and the string and saying what is accepted. Encoding writes the
canonical form (tokens in the order above, default flags left out), so
`encode_block_string(decode_block_string(s)) == s` for canonical strings, and a reference
string with default flags encodes to the canonical string of the same architecture (which the
reference decoders read back, as they take an absent flag for its default). A list of stages
must chain: each stage's `i` is the previous stage's `o`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

BLOCK_STRING_FORMAT = (
    "r<repeats>_k<kernel>_s<sy><sx>_e<expand>_i<in>_o<out>[_c1][_se<ratio>][_noskip]"
)

# The reference encoders' flags at the value they write by default (see the module docstring):
# accepted, and dropped when encoding.
DEFAULT_FLAGS = ("c0", "f0", "p0")
_EXPECTED = (f"{BLOCK_STRING_FORMAT} (the reference encoders' default flags "
             f"{', '.join(DEFAULT_FLAGS)} are accepted too)")

_TOKEN = re.compile(r"^(r|k|s|e|i|o|c|f|p|se)(\d+(?:\.\d+)?)$")


@dataclasses.dataclass(frozen=True)
class BlockArgs:
    """One stage of MBConv blocks, before width and depth scaling."""

    repeats: int
    kernel_size: int
    strides: int
    expand_ratio: int
    filters_in: int
    filters_out: int
    se_ratio: float = 0.0
    id_skip: bool = True
    fused: bool = False
    # How the stride was spelled (2: `s22`, V1 reference; 1: `s2`, V2 reference). Not part of
    # the architecture, so equality ignores it; encoding uses it to give the string back.
    stride_digits: int = dataclasses.field(default=2, compare=False)

    def __post_init__(self) -> None:
        for name in ("repeats", "kernel_size", "strides", "expand_ratio", "filters_in",
                     "filters_out"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"BlockArgs.{name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.se_ratio <= 1.0:
            raise ValueError(f"BlockArgs.se_ratio must be in [0, 1], got {self.se_ratio!r}")
        if self.stride_digits not in (1, 2):
            raise ValueError(f"BlockArgs.stride_digits must be 1 or 2, got {self.stride_digits!r}")

    @property
    def has_se(self) -> bool:
        return self.se_ratio > 0

    @property
    def se_filters(self) -> int:
        return se_filters(self.filters_in, self.se_ratio)


def se_filters(filters_in: int, se_ratio: float) -> int:
    """Squeeze-excitation bottleneck width: `se_ratio` times the *block input* channels, as
    the reference computes it (not the expanded channels), at least 1."""
    return max(1, int(filters_in * se_ratio))


# EfficientNet-B0 (Tan & Le 2019, Table 1): seven stages after a 32-channel stem, before a
# 1280-channel head.
B0_BLOCK_STRINGS: tuple[str, ...] = (
    "r1_k3_s11_e1_i32_o16_se0.25",
    "r2_k3_s22_e6_i16_o24_se0.25",
    "r2_k5_s22_e6_i24_o40_se0.25",
    "r3_k3_s22_e6_i40_o80_se0.25",
    "r3_k5_s11_e6_i80_o112_se0.25",
    "r4_k5_s22_e6_i112_o192_se0.25",
    "r1_k3_s11_e6_i192_o320_se0.25",
)
STEM_FILTERS = 32
HEAD_FILTERS = 1280

# EfficientNetV2 (Tan & Le 2021, Table 4 for S; google/automl efficientnetv2/effnetv2_configs.py
# `v2_base_block`, `v2_s_block`, `v2_m_block`, `v2_l_block`). V2 models take their stem width
# from the first stage's input channels and keep the 1280-channel head.
V2_BASE_BLOCK_STRINGS: tuple[str, ...] = (
    "r1_k3_s1_e1_i32_o16_c1",
    "r2_k3_s2_e4_i16_o32_c1",
    "r2_k3_s2_e4_i32_o48_c1",
    "r3_k3_s2_e4_i48_o96_se0.25",
    "r5_k3_s1_e6_i96_o112_se0.25",
    "r8_k3_s2_e6_i112_o192_se0.25",
)
V2_S_BLOCK_STRINGS: tuple[str, ...] = (
    "r2_k3_s1_e1_i24_o24_c1",
    "r4_k3_s2_e4_i24_o48_c1",
    "r4_k3_s2_e4_i48_o64_c1",
    "r6_k3_s2_e4_i64_o128_se0.25",
    "r9_k3_s1_e6_i128_o160_se0.25",
    "r15_k3_s2_e6_i160_o256_se0.25",
)
V2_M_BLOCK_STRINGS: tuple[str, ...] = (
    "r3_k3_s1_e1_i24_o24_c1",
    "r5_k3_s2_e4_i24_o48_c1",
    "r5_k3_s2_e4_i48_o80_c1",
    "r7_k3_s2_e4_i80_o160_se0.25",
    "r14_k3_s1_e6_i160_o176_se0.25",
    "r18_k3_s2_e6_i176_o304_se0.25",
    "r5_k3_s1_e6_i304_o512_se0.25",
)
V2_L_BLOCK_STRINGS: tuple[str, ...] = (
    "r4_k3_s1_e1_i32_o32_c1",
    "r7_k3_s2_e4_i32_o64_c1",
    "r7_k3_s2_e4_i64_o96_c1",
    "r10_k3_s2_e4_i96_o192_se0.25",
    "r19_k3_s1_e6_i192_o224_se0.25",
    "r25_k3_s2_e6_i224_o384_se0.25",
    "r7_k3_s1_e6_i384_o640_se0.25",
)
# EfficientNet-Lite (tensorflow/tpu, models/official/efficientnet/lite/
# efficientnet_lite_builder.py): the B0 stages without squeeze-excitation. The reference keeps
# `se0.25` in its strings and switches SE off globally (`use_se=False`); here the strings say
# it, so the data alone describes the architecture.
LITE_BLOCK_STRINGS: tuple[str, ...] = tuple(s.removesuffix("_se0.25") for s in B0_BLOCK_STRINGS)


def decode_block_string(block_string: str) -> BlockArgs:
    """Parses one block string (see the module docstring for the notation)."""
    if not isinstance(block_string, str) or not block_string:
        raise ValueError(f"block string must be a non-empty str, got {block_string!r}")
    values: dict[str, str] = {}
    id_skip = True
    for token in block_string.split("_"):
        if token == "noskip":
            if not id_skip:
                raise _bad(block_string, token, "repeated")
            id_skip = False
            continue
        match = _TOKEN.match(token)
        if match is None:
            raise _bad(block_string, token, "unknown")
        key, value = match.groups()
        if key in values:
            raise _bad(block_string, token, "repeated")
        values[key] = value
    missing = [key for key in ("r", "k", "s", "e", "i", "o") if key not in values]
    if missing:
        raise ValueError(
            f"block string {block_string!r} lacks {', '.join(missing)}; "
            f"expected {_EXPECTED}"
        )
    strides = values["s"]
    if len(strides) not in (1, 2) or strides[0] != strides[-1]:
        raise _bad(block_string, "s" + strides,
                   "needs one stride digit or two equal ones (s1, s2, s11, s22):")
    fused = _reference_flags(values, block_string)
    if values.get("se") is not None and float(values["se"]) == 0:
        raise _bad(block_string, "se" + values["se"],
                   "se0 means no squeeze-excitation (omit the token):")
    try:
        return BlockArgs(
            repeats=_int(values["r"], block_string),
            kernel_size=_int(values["k"], block_string),
            strides=int(strides[0]),
            expand_ratio=_int(values["e"], block_string),
            filters_in=_int(values["i"], block_string),
            filters_out=_int(values["o"], block_string),
            se_ratio=float(values.get("se", 0.0)),
            id_skip=id_skip,
            fused=fused,
            stride_digits=len(strides),
        )
    except ValueError as err:
        raise ValueError(f"block string {block_string!r}: {err}") from None


def encode_block_string(args: BlockArgs) -> str:
    """Writes `args` back in the reference notation."""
    tokens = [
        f"r{args.repeats}",
        f"k{args.kernel_size}",
        "s" + str(args.strides) * args.stride_digits,
        f"e{args.expand_ratio}",
        f"i{args.filters_in}",
        f"o{args.filters_out}",
    ]
    if args.fused:
        tokens.append("c1")
    if args.se_ratio > 0:
        tokens.append(f"se{args.se_ratio:g}")
    if not args.id_skip:
        tokens.append("noskip")
    return "_".join(tokens)


def decode_blocks(block_strings: Iterable[str | BlockArgs]) -> tuple[BlockArgs, ...]:
    """Decodes a baseline given as block strings (BlockArgs pass through unchanged)."""
    blocks = tuple(
        b if isinstance(b, BlockArgs) else decode_block_string(b) for b in block_strings
    )
    if not blocks:
        raise ValueError("a baseline needs at least one block string, got none")
    for previous, block in zip(blocks[:-1], blocks[1:], strict=True):
        if block.filters_in != previous.filters_out:
            raise ValueError(
                f"block string {encode_block_string(block)!r} takes i{block.filters_in}, but "
                f"the stage before it ({encode_block_string(previous)!r}) gives "
                f"o{previous.filters_out}; a stage's input must be the previous output"
            )
    return blocks


def _reference_flags(values: dict[str, str], block_string: str) -> bool:
    """Checks the conv-type, fused-conv and super-pixel flags; True for Fused-MBConv (`c1`).

    A flag at its reference default (`c0`, `f0`, `p0`) changes nothing. Only tensorflow/tpu's
    encoder writes `p`, and there `c1` selects its MBConvBlockWithoutDepthwise (EdgeTPU: a
    regular expansion convolution at stride 1, the stride on the 1x1 projection, no
    squeeze-excitation), not the
    Fused-MBConv that google/automl's V2 `c1` means and that we build.
    """
    for key, name in (("f", "fused-conv"), ("p", "super-pixel")):
        if values.get(key, "0") != "0":
            raise _bad(block_string, key + values[key],
                       f"tensorflow/tpu's {name} flag is built only at its default {key}0, not")
    conv_type = values.get("c", "0")
    if conv_type not in ("0", "1"):
        raise _bad(block_string, "c" + conv_type,
                   "conv type must be c0 (MBConv, the default) or c1 (Fused-MBConv), not")
    if conv_type == "1" and "p" in values:
        raise _bad(block_string, "c1",
                   "a string with tensorflow/tpu's p flag comes from its encoder, where c1 is "
                   "EdgeTPU's block without depthwise convolution (not built here; our c1 is "
                   "google/automl's Fused-MBConv, written without p):")
    return conv_type == "1"


def _int(text: str, block_string: str) -> int:
    if "." in text:
        raise _bad(block_string, text, "needs an integer, not")
    return int(text)


def _bad(block_string: str, token: str, problem: str) -> ValueError:
    return ValueError(
        f"block string {block_string!r}: {problem} token {token!r}; expected {_EXPECTED}"
    )


B0_BLOCKS: tuple[BlockArgs, ...] = decode_blocks(B0_BLOCK_STRINGS)
V2_BASE_BLOCKS: tuple[BlockArgs, ...] = decode_blocks(V2_BASE_BLOCK_STRINGS)
V2_S_BLOCKS: tuple[BlockArgs, ...] = decode_blocks(V2_S_BLOCK_STRINGS)
V2_M_BLOCKS: tuple[BlockArgs, ...] = decode_blocks(V2_M_BLOCK_STRINGS)
V2_L_BLOCKS: tuple[BlockArgs, ...] = decode_blocks(V2_L_BLOCK_STRINGS)
LITE_BLOCKS: tuple[BlockArgs, ...] = decode_blocks(LITE_BLOCK_STRINGS)
