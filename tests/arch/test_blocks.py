"""Block strings: the reference notation, strict decoding, exact round trip."""

from __future__ import annotations

import pytest

from efficientnet_search.arch.blocks import (
    B0_BLOCK_STRINGS,
    B0_BLOCKS,
    BlockArgs,
    decode_block_string,
    decode_blocks,
    encode_block_string,
)


@pytest.mark.parametrize("block_string", [*B0_BLOCK_STRINGS, "r1_k3_s11_e1_i32_o16_se0.25_noskip",
                                          "r3_k7_s22_e4_i8_o8", "r1_k3_s11_e1_i32_o16_se0.5"])
def test_round_trip(block_string):
    assert encode_block_string(decode_block_string(block_string)) == block_string


def test_decodes_fields():
    args = decode_block_string("r2_k5_s22_e6_i24_o40_se0.25")
    assert args == BlockArgs(repeats=2, kernel_size=5, strides=2, expand_ratio=6,
                             filters_in=24, filters_out=40, se_ratio=0.25, id_skip=True)
    assert decode_block_string("r1_k3_s11_e1_i32_o16_noskip").id_skip is False


def test_b0_baseline_matches_paper_table1():
    assert [b.repeats for b in B0_BLOCKS] == [1, 2, 2, 3, 3, 4, 1]
    assert [b.filters_out for b in B0_BLOCKS] == [16, 24, 40, 80, 112, 192, 320]
    assert [b.kernel_size for b in B0_BLOCKS] == [3, 3, 5, 3, 5, 5, 3]
    assert [b.strides for b in B0_BLOCKS] == [1, 2, 2, 2, 1, 2, 1]


@pytest.mark.parametrize(
    ("bad", "token"),
    [
        ("r1_k3_s11_e1_i32_o16_x7", "x7"),
        ("r1_k3_s11_e1_i32_o16_se0.25_se0.5", "se0.5"),
        ("r1_k3_s12_e1_i32_o16", "s12"),
        ("r1.5_k3_s11_e1_i32_o16", "1.5"),
        ("r1_k3_s11_e1_i32_o16_noskip_noskip", "noskip"),
    ],
)
def test_malformed_string_names_token_and_format(bad, token):
    with pytest.raises(ValueError) as err:
        decode_block_string(bad)
    assert repr(token) in str(err.value) and "r<repeats>" in str(err.value)


def test_missing_fields_are_named():
    with pytest.raises(ValueError, match="lacks o"):
        decode_block_string("r1_k3_s11_e1_i32")


def test_zero_repeats_rejected():
    with pytest.raises(ValueError, match="repeats"):
        decode_block_string("r0_k3_s11_e1_i32_o16")


def test_empty_baseline_rejected():
    with pytest.raises(ValueError, match="at least one block"):
        decode_blocks([])
