"""Block strings: the reference notation, strict decoding, exact round trip, and the strings
the reference encoders write (with their default-valued flags)."""

from __future__ import annotations

import pytest

from efficientnet_search.arch.blocks import (
    B0_BLOCK_STRINGS,
    B0_BLOCKS,
    V2_BASE_BLOCK_STRINGS,
    V2_BASE_BLOCKS,
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
    [("r1_k3_s1_e1_i32_o16_c1_c0", "repeated token 'c0'"),
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


# B0's stages as tensorflow/tpu's `BlockDecoder._encode_block_string` writes them
# (models/official/efficientnet/efficientnet_builder.py: 'r%d', 'k%d', 's%d%d', 'e%s', 'i%d',
# 'o%d', 'c%d' % conv_type, 'f%d' % fused_conv, 'p%d' % super_pixel, then 'se%s' when
# 0 < se_ratio <= 1 and 'noskip'), for the blocks its `efficientnet()` decodes from the B0 list
# (conv_type, fused_conv, super_pixel 0). No reference test prints these strings; they are
# the encoder's format applied to the reference's own blocks.
TPU_ENCODED_B0 = (
    "r1_k3_s11_e1_i32_o16_c0_f0_p0_se0.25",
    "r2_k3_s22_e6_i16_o24_c0_f0_p0_se0.25",
    "r2_k5_s22_e6_i24_o40_c0_f0_p0_se0.25",
    "r3_k3_s22_e6_i40_o80_c0_f0_p0_se0.25",
    "r3_k5_s11_e6_i80_o112_c0_f0_p0_se0.25",
    "r4_k5_s22_e6_i112_o192_c0_f0_p0_se0.25",
    "r1_k3_s11_e6_i192_o320_c0_f0_p0_se0.25",
)
# The same encoder before it gained fused_conv and super_pixel (tensorflow/tpu at 082b2267,
# same file): only 'c%d' after 'o'.
TPU_EARLY_ENCODED_B0 = tuple(s.replace("_c0_f0_p0", "_c0") for s in TPU_ENCODED_B0)
# EfficientNetV2-B0's stages (`v2_base_block`) as google/automl's `_encode_block_string`
# (efficientnetv2/effnetv2_configs.py: 'r%d', 'k%d', 's%d', 'e%s', 'i%d', 'o%d',
# 'c%d' % conv_type, 'f%d' % fused_conv, then 'se%s' when 0 < se_ratio <= 1) formats them with
# fused_conv 0 (its decoder sets no fused_conv, and no se_ratio for the fused stages, so the
# encoder needs those given).
AUTOML_ENCODED_V2_B0 = (
    "r1_k3_s1_e1_i32_o16_c1_f0",
    "r2_k3_s2_e4_i16_o32_c1_f0",
    "r2_k3_s2_e4_i32_o48_c1_f0",
    "r3_k3_s2_e4_i48_o96_c0_f0_se0.25",
    "r5_k3_s1_e6_i96_o112_c0_f0_se0.25",
    "r8_k3_s2_e6_i112_o192_c0_f0_se0.25",
)


@pytest.mark.parametrize(
    ("encoded", "ours"),
    [(TPU_ENCODED_B0, B0_BLOCK_STRINGS), (TPU_EARLY_ENCODED_B0, B0_BLOCK_STRINGS),
     (AUTOML_ENCODED_V2_B0, V2_BASE_BLOCK_STRINGS)],
    ids=["tensorflow-tpu", "tensorflow-tpu-early", "google-automl-v2"],
)
def test_reference_encoder_strings_decode_to_our_architecture(encoded, ours):
    decoded = decode_blocks(encoded)
    assert decoded == decode_blocks(ours)
    # Encoding writes the canonical form: the default flags are left out, the stride spelling
    # (s11 / s1) kept, so the result is our string for the same stage.
    assert tuple(encode_block_string(b) for b in decoded) == ours


def test_each_default_flag_alone_changes_nothing():
    canonical = "r2_k3_s22_e6_i16_o24_se0.25"
    for flag in ("c0", "f0", "p0"):
        with_flag = canonical.replace("_se", f"_{flag}_se")
        assert decode_block_string(with_flag) == decode_block_string(canonical)
        assert encode_block_string(decode_block_string(with_flag)) == canonical
    fused = decode_block_string("r1_k3_s1_e1_i32_o16_c1_f0")
    assert fused == V2_BASE_BLOCKS[0] and fused.fused


@pytest.mark.parametrize(
    ("bad", "token", "message"),
    [
        ("r1_k3_s11_e1_i32_o16_c0_f1_p0_se0.25", "f1", "fused-conv flag is built only at its "
                                                       "default f0"),
        ("r1_k3_s11_e1_i32_o16_c0_f0_p1_se0.25", "p1", "super-pixel flag is built only at its "
                                                       "default p0"),
        ("r1_k3_s11_e1_i32_o16_c0_f0_p2_se0.25", "p2", "super-pixel"),
        ("r1_k3_s11_e1_i32_o16_c2_f0_p0_se0.25", "c2", r"c0 \(MBConv, the default\) or c1"),
        ("r1_k3_s11_e1_i32_o16_c0_f0_p0_se0.25_cc", "cc", "unknown"),
        # EdgeTPU's stage 2 (tensorflow/tpu edgetpu/efficientnet_edgetpu_builder.py,
        # 'r2_k3_s22_e8_i24_o32_c1') as tensorflow/tpu's encoder writes it: there c1 is the
        # block without depthwise convolution, not Fused-MBConv.
        ("r2_k3_s22_e8_i24_o32_c1_f0_p0", "c1", "EdgeTPU's block without depthwise"),
        ("r1_k3_s11_e1_i32_o16_c0_c0_se0.25", "c0", "repeated"),
        ("r1_k3_s11_e1_i32_o16_f0_f0_se0.25", "f0", "repeated"),
        ("r1_k3_s11_e1_i32_o16_p0_c0_p0", "p0", "repeated"),
    ],
)
def test_non_default_reference_flags_are_refused_with_the_token_named(bad, token, message):
    with pytest.raises(ValueError, match=message) as err:
        decode_block_string(bad)
    text = str(err.value)
    assert f"token {token!r}" in text and repr(bad) in text and len(text.splitlines()) == 1
    # What is accepted: the canonical format and the default flags.
    assert "r<repeats>" in text and "c0, f0, p0 are accepted" in text
