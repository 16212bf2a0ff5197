"""Block strings: the reference notation, strict decoding, exact round trip."""

from __future__ import annotations

import pytest

from efficientnet_search.arch.blocks import (
    B0_BLOCK_STRINGS,
    B0_BLOCKS,
    V2_BASE_BLOCK_STRINGS,
    V2_L_BLOCK_STRINGS,
    V2_M_BLOCK_STRINGS,
    V2_S_BLOCK_STRINGS,
    BlockArgs,
    decode_block_string,
    decode_blocks,
    encode_block_string,
)


@pytest.mark.parametrize("block_string", [*B0_BLOCK_STRINGS, "r1_k3_s11_e1_i32_o16_se0.25_noskip",
                                          "r3_k7_s22_e4_i8_o8", "r1_k3_s11_e1_i32_o16_se0.5",
                                          *V2_BASE_BLOCK_STRINGS, *V2_S_BLOCK_STRINGS,
                                          *V2_M_BLOCK_STRINGS, *V2_L_BLOCK_STRINGS,
                                          "r2_k3_s22_e4_i24_o48_c1_se0.25_noskip"])
def test_round_trip(block_string):
    assert encode_block_string(decode_block_string(block_string)) == block_string


def test_decodes_fields():
    args = decode_block_string("r2_k5_s22_e6_i24_o40_se0.25")
    assert args == BlockArgs(repeats=2, kernel_size=5, strides=2, expand_ratio=6,
                             filters_in=24, filters_out=40, se_ratio=0.25, id_skip=True)
    assert decode_block_string("r1_k3_s11_e1_i32_o16_noskip").id_skip is False


def test_fused_flag_and_one_digit_stride():
    fused = decode_block_string("r4_k3_s2_e4_i24_o48_c1")
    assert fused.fused and fused.strides == 2 and fused.se_ratio == 0
    # The V1 and V2 spellings of a stride are one architecture.
    v1, v2 = "r1_k3_s22_e6_i16_o24", "r1_k3_s2_e6_i16_o24"
    assert decode_block_string(v1) == decode_block_string(v2)
    assert not decode_block_string("r6_k3_s2_e4_i64_o128_se0.25").fused


def test_v2_s_matches_the_issue_and_paper_table4():
    blocks = decode_blocks(V2_S_BLOCK_STRINGS)
    assert [b.fused for b in blocks] == [True, True, True, False, False, False]
    assert [b.repeats for b in blocks] == [2, 4, 4, 6, 9, 15]
    assert [b.filters_out for b in blocks] == [24, 48, 64, 128, 160, 256]


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
        ("r1_k3_s1_e1_i32_o16_c1_c1", "c1"),
        ("r1_k3_s222_e1_i32_o16", "s222"),
        ("r1_k3_s1_e1_i32_o16_c2", "c2"),
        ("r1_k3_s1_e1_i32_o16_c1.5", "c1.5"),
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


@pytest.mark.parametrize(
    ("bad", "message"),
    [("r1_k3_s1_e1_i32_o16_c0", "c0 is the default MBConv"),
     ("r1_k3_s1_e1_i32_o16_c1_c0", "repeated token 'c0'"),
     ("r1_k3_s1_e1_i32_o16_se0", "se0 means no squeeze-excitation")],
)
def test_contradictory_or_redundant_flags_name_the_string(bad, message):
    with pytest.raises(ValueError, match=message) as err:
        decode_block_string(bad)
    assert repr(bad) in str(err.value) and len(str(err.value).splitlines()) == 1


def test_stages_that_do_not_chain_cannot_be_built():
    with pytest.raises(ValueError, match="'r2_k3_s2_e4_i32_o48_c1' takes i32, but the stage "
                                         "before it .* gives o16"):
        decode_blocks(["r1_k3_s1_e1_i32_o16_c1", "r2_k3_s2_e4_i32_o48_c1"])
