"""MBConv assembled from parts: activation, normalization and squeeze-excitation are choices."""

from __future__ import annotations

import keras
import pytest
from keras import layers

from efficientnet_search.arch.blocks import decode_block_string
from efficientnet_search.arch.layers import BlockParts, mbconv_block


def _block(block_string: str, parts: BlockParts) -> keras.Model:
    args = decode_block_string(block_string)
    inputs = keras.Input((8, 8, args.filters_in))
    return keras.Model(inputs, mbconv_block(inputs, args, name="block1a_", parts=parts))


def test_parts_replace_activation_and_normalization():
    parts = BlockParts(activation="relu6", norm=lambda name: layers.LayerNormalization(name=name))
    model = _block("r1_k3_s11_e6_i16_o16", parts)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "LayerNormalization" in kinds and "BatchNormalization" not in kinds
    activations = {layer.activation.__name__ for layer in model.layers
                   if isinstance(layer, layers.Activation)}
    assert activations == {"relu6"}
    assert "block1a_add" in {layer.name for layer in model.layers}


def test_default_parts_are_efficientnets_swish_batch_norm_and_se():
    model = _block("r1_k3_s11_e6_i16_o16_se0.25", BlockParts())
    names = {layer.name for layer in model.layers}
    assert {"block1a_se_reduce", "block1a_expand_bn", "block1a_project_bn"} <= names
    assert model.get_layer("block1a_se_reduce").filters == 4  # 0.25 x the block's 16 inputs


def test_a_block_asking_for_se_without_an_se_part_is_refused():
    with pytest.raises(ValueError, match="block1a_.*se_ratio=0.25.*drop the se token"):
        _block("r1_k3_s11_e6_i16_o16_se0.25", BlockParts(squeeze_excite=None))
