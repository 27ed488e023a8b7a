"""Fine-tuning (``nnUNetv2_train -pretrained_weights``) works for our networks exactly as for PlainConvUNet: nnU-Net's
own ``load_pretrained_weights`` transfers every tensor but the class-dependent ones, which sit under a
``.seg_layers.`` name and stay at their initialisation; a checkpoint with another number of input channels loads
once the weights listed in DNA's ``keys_to_in_proj`` are adapted (here by nnssl's rule: the pretrained kernel
repeated over the new channels and divided by their number)."""
from __future__ import annotations

from typing import Sequence

import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from nnunetv2.run.load_pretrained_weights import load_pretrained_weights

from tests.architectures.cases import ARCHITECTURES
from tests.architectures.test_rewrites import small_kwargs

NETWORKS = [PlainConvUNet] + [case.cls for case in ARCHITECTURES]
CHANGES = {"classes": ({"input_channels": 1, "num_classes": 3}, {"input_channels": 1, "num_classes": 5}),
           "input-channels": ({"input_channels": 1, "num_classes": 3}, {"input_channels": 2, "num_classes": 3})}


def build(cls: type, seed: int, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = cls(**{**small_kwargs(3), **overrides})
    net.apply(net.initialize)
    return net


def is_input_projection(key: str, keys_to_in_proj: Sequence[str]) -> bool:
    """``key`` is a listed input projection's weight, under the name given or as a sub-module's copy of it (DNA's
    decoder holds the encoder, so ``decoder.encoder.stages...`` repeats the U-Net stem)."""
    return any(key == f"{p}.weight" or key.endswith(f".{p}.weight") for p in keys_to_in_proj)


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("cls", NETWORKS, ids=lambda c: c.__name__)
def test_nnunet_fine_tuning_transfers_all_but_the_segmentation_layers(cls, change, tmp_path):
    before, after = CHANGES[change]
    source = build(cls, 0, **before)
    pretrained = source.state_dict()
    if after["input_channels"] != before["input_channels"]:
        channels = after["input_channels"]
        pretrained = {k: v.repeat(1, channels, *[1] * (v.dim() - 2)) / channels
                      if is_input_projection(k, source.keys_to_in_proj) else v for k, v in pretrained.items()}
    checkpoint = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": pretrained, "init_args": {}, "trainer_name": "nnUNetTrainer"}, checkpoint)

    net = build(cls, 1, **after)
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    load_pretrained_weights(net, str(checkpoint))

    loaded = net.state_dict()
    class_dependent = [k for k in loaded if ".seg_layers." in k]
    assert class_dependent, "no segmentation layers: nnU-Net would try to transfer the class-dependent ones"
    for key, value in loaded.items():
        expected = initial[key] if ".seg_layers." in key else pretrained[key]
        assert torch.equal(value, expected), key


@pytest.mark.parametrize("cls", NETWORKS, ids=lambda c: c.__name__)
def test_shapes_depend_on_classes_only_in_seg_layers_and_on_input_channels_only_in_keys_to_in_proj(cls):
    reference = build(cls, 0).state_dict()
    more_classes = build(cls, 0, num_classes=5).state_dict()
    more_channels = build(cls, 0, input_channels=2)
    assert all(".seg_layers." in k for k in reference if reference[k].shape != more_classes[k].shape)
    changed = {k for k, v in more_channels.state_dict().items() if v.shape != reference[k].shape}
    assert changed == {k for k in reference if is_input_projection(k, more_channels.keys_to_in_proj)}
    for key in more_channels.keys_to_in_proj:  # each reads the raw input
        assert more_channels.get_submodule(key).in_channels == 2
