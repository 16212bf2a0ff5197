"""The MBConv baseline as data: block strings and their decoded form.

A block string describes one stage of MBConv blocks in the reference's notation
(Tan & Le 2019, Table 1; the official TPU code's `BlockDecoder`), tokens joined by `_`:

    r<repeats>        number of blocks in the stage (before depth scaling)
    k<kernel>         depthwise kernel size
    s<sy><sx>         stride of the first block (one digit each way, `s11` or `s22`)
    e<expand>         expansion ratio of the inverted bottleneck
    i<in>, o<out>     input and output channels (before width scaling)
    se<ratio>         squeeze-excitation ratio, relative to the block's input channels
    noskip            no identity skip (and so no stochastic depth) in this stage

Example: `r2_k3_s22_e6_i16_o24_se0.25`. Decoding is strict: an unknown or repeated token raises
`ValueError`, and `encode_block_string(decode_block_string(s)) == s` for canonical strings.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

BLOCK_STRING_FORMAT = "r<repeats>_k<kernel>_s<sy><sx>_e<expand>_i<in>_o<out>[_se<ratio>][_noskip]"

_TOKEN = re.compile(r"^(r|k|s|e|i|o|se)(\d+(?:\.\d+)?)$")


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

    def __post_init__(self) -> None:
        for name in ("repeats", "kernel_size", "strides", "expand_ratio", "filters_in",
                     "filters_out"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"BlockArgs.{name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.se_ratio <= 1.0:
            raise ValueError(f"BlockArgs.se_ratio must be in [0, 1], got {self.se_ratio!r}")

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
            f"expected {BLOCK_STRING_FORMAT}"
        )
    strides = values["s"]
    if len(strides) != 2 or strides[0] != strides[1]:
        raise _bad(block_string, "s" + strides,
                   "needs two equal stride digits, such as s11 or s22:")
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
        )
    except ValueError as err:
        raise ValueError(f"block string {block_string!r}: {err}") from None


def encode_block_string(args: BlockArgs) -> str:
    """Writes `args` back in the reference notation."""
    tokens = [
        f"r{args.repeats}",
        f"k{args.kernel_size}",
        f"s{args.strides}{args.strides}",
        f"e{args.expand_ratio}",
        f"i{args.filters_in}",
        f"o{args.filters_out}",
    ]
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
    return blocks


def _int(text: str, block_string: str) -> int:
    if "." in text:
        raise _bad(block_string, text, "needs an integer, not")
    return int(text)


def _bad(block_string: str, token: str, problem: str) -> ValueError:
    return ValueError(
        f"block string {block_string!r}: {problem} token {token!r}; "
        f"expected {BLOCK_STRING_FORMAT}"
    )


B0_BLOCKS: tuple[BlockArgs, ...] = decode_blocks(B0_BLOCK_STRINGS)
LITE_BLOCKS: tuple[BlockArgs, ...] = decode_blocks(LITE_BLOCK_STRINGS)
