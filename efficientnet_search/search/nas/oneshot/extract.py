"""A subnet of the supernet as a stand-alone Keras model, built by the normal builder.

`extract` builds the subnet's network with `arch.model.build_model` (so cost counting,
export, fine-tuning and retraining take it unchanged) and fills every layer with the
supernet's shared weights: the channel prefixes and the kernel centre the subnet uses, and
the batch-norm statistics the supernet holds (recalibrate the subnet first: `Supernet.
recalibrate`). In inference mode its outputs equal the supernet's for that subnet
(tests/search/nas/oneshot/test_extract.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from efficientnet_search.arch.model import build_model
from efficientnet_search.search.nas.oneshot.supernet import BatchNorm, Supernet


def extract(supernet: Supernet, blocks: Sequence[str], resolution: int, *,
            bn_momentum: float = 0.9) -> keras.Model:
    """The subnet (`blocks` at `resolution`) with the supernet's weights.

    Raises:
      ValueError: the subnet is not inside the supernet (`ElasticSpace.encode` says why).
    """
    elastic = supernet.elastic
    elastic.encode(blocks, resolution)  # refuses a subnet the supernet does not hold
    spec = elastic.spec(blocks, resolution)
    model = build_model(spec=spec, bn_momentum=bn_momentum,
                        input_shape=(resolution, resolution, supernet.channels))  # fmt: skip
    _set(model, "stem_conv", [supernet.stem.numpy()[..., :spec.stem_channels]])
    _set_bn(model, "stem_bn", supernet.stem_bn, spec.stem_channels)
    slots = {(s.stage, s.index): i for i, s in enumerate(elastic.slots)}
    index: dict[int, int] = {}
    for block in spec.planned_blocks():
        j = index.get(block.stage, 0)
        index[block.stage] = j + 1
        _fill_block(model, block, supernet.blocks[slots[(block.stage, j)]],
                    max(elastic.kernels))  # fmt: skip
    last = spec.planned_blocks()[-1].args.filters_out
    _set(model, "top_conv", [supernet.top.numpy()[:, :, :last, :spec.head_channels]])
    _set_bn(model, "top_bn", supernet.top_bn, spec.head_channels)
    _set(model, "predictions",
         [supernet.dense.numpy()[:spec.head_channels], supernet.dense_bias.numpy()])
    return model


def _fill_block(model: keras.Model, block, v, kmax: int) -> None:
    """One MBConv block's layers (arch/layers.py `mbconv_block` names) from slot `v`."""
    a, name = block.args, block.name
    cexp = a.filters_in * a.expand_ratio
    if a.expand_ratio != 1:
        _set(model, f"{name}expand_conv", [v.expand.numpy()[:, :, :a.filters_in, :cexp]])
        _set_bn(model, f"{name}expand_bn", v.expand_bn, cexp)
    start = (kmax - a.kernel_size) // 2  # the kernel's centre
    k = a.kernel_size
    _set(model, f"{name}dwconv", [v.dw.numpy()[start:start + k, start:start + k, :cexp]])
    _set_bn(model, f"{name}bn", v.bn, cexp)
    if a.has_se:
        cse = a.se_filters
        _set(model, f"{name}se_reduce",
             [v.se_reduce.numpy()[:, :, :cexp, :cse], v.se_reduce_bias.numpy()[:cse]])
        _set(model, f"{name}se_expand",
             [v.se_expand.numpy()[:, :, :cse, :cexp], v.se_expand_bias.numpy()[:cexp]])
    _set(model, f"{name}project_conv", [v.project.numpy()[:, :, :cexp, :a.filters_out]])
    _set_bn(model, f"{name}project_bn", v.project_bn, a.filters_out)


def _set_bn(model: keras.Model, name: str, bn: BatchNorm, channels: int) -> None:
    _set(model, name, [bn.gamma.numpy()[:channels], bn.beta.numpy()[:channels],
                       bn.moving_mean.numpy()[:channels],
                       bn.moving_variance.numpy()[:channels]])  # fmt: skip


def _set(model: keras.Model, name: str, weights: list[np.ndarray]) -> None:
    model.get_layer(name).set_weights(weights)
