"""Checkpoints that fine-tune: nnU-Net's ``load_pretrained_weights`` (``-pretrained_weights``) transfers every
state-dict key except those containing ``.seg_layers.`` and asserts equal shapes for the rest, so everything
whose shape depends on ``num_classes`` must sit under a ``seg_layers`` attribute of a submodule (DNA's
``decoder.seg_layers``). Weights that depend on ``input_channels`` are listed in ``keys_to_in_proj`` (DNA's
``AbstractDynamicNetworkArchitectures`` convention), so pretrained weights can be adapted to other channels."""
from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import Dict, List, Tuple

import torch

from nnunet_archs.contract.base import CheckResult, Status, Subject, describe, worst
from nnunet_archs.contract.cases import NetworkCase

NAME = "fine-tuning keys (seg_layers, keys_to_in_proj)"
SKIPPED = ".seg_layers."  # nnunetv2/run/load_pretrained_weights.py: skip_strings_in_pretrained


def _depending(a: Dict[str, Tuple[int, ...]], b: Dict[str, Tuple[int, ...]]) -> List[str]:
    return sorted(set(a) ^ set(b) | {k for k in set(a) & set(b) if a[k] != b[k]})


def _class_keys(subject: Subject, case: NetworkCase) -> CheckResult:
    classes = case.record.num_classes
    outside = [k for k in _depending(subject.shapes(case, num_classes=classes),
                                     subject.shapes(case, num_classes=classes + 1)) if SKIPPED not in k]
    if not outside:
        return CheckResult(NAME, Status.PASS, "")
    return CheckResult(NAME, Status.FAIL, f"{describe(case)}: {len(outside)} state-dict entries depend on "
                       f"num_classes but are not under '.seg_layers.', e.g. {outside[:3]}; nnU-Net's "
                       f"-pretrained_weights from a checkpoint with other classes fails on them",
                       "move every layer whose shape depends on num_classes into a ModuleList attribute named "
                       "seg_layers of a submodule (e.g. self.decoder.seg_layers, as DNA's UNetDecoder)")


def _input_keys(subject: Subject, case: NetworkCase) -> CheckResult:
    channels = case.record.num_input_channels
    net = subject.meta_network(case)
    entries = getattr(net, "keys_to_in_proj", None)
    fix = ("set self.keys_to_in_proj to the module paths of every layer that reads the input (its weight's "
           "second axis is input_channels), e.g. ('encoder.stages.0.0.convs.0.conv',)")
    if entries is None:
        return CheckResult(NAME, Status.FAIL, "the network has no keys_to_in_proj", fix)
    if isinstance(entries, str):
        return CheckResult(NAME, Status.FAIL, f"keys_to_in_proj is the string {entries!r}, not a sequence of module "
                           f"paths", fix)
    for entry in entries:
        try:
            weight = getattr(net.get_submodule(entry), "weight", None)
        except AttributeError:
            return CheckResult(NAME, Status.FAIL, f"keys_to_in_proj entry {entry!r} is not a submodule", fix)
        if weight is None or weight.dim() < 2 or weight.shape[1] != channels:
            found = "no weight" if weight is None else f"weight {tuple(weight.shape)}"
            return CheckResult(NAME, Status.FAIL, f"keys_to_in_proj entry {entry!r} has {found}, not an input "
                               f"projection (second axis = input_channels = {channels})", fix)
    # DNA's decoder keeps a reference to the encoder, so one weight can have several keys: compare tensors
    listed = {id(net.get_submodule(entry).weight) for entry in entries}
    state = net.state_dict(keep_vars=True)
    unlisted = [k for k in _depending(subject.shapes(case, input_channels=channels),
                                      subject.shapes(case, input_channels=channels + 1))
                if k not in state or id(state[k]) not in listed]
    if unlisted:
        return CheckResult(NAME, Status.FAIL, f"{describe(case)}: {unlisted[:3]} depend on input_channels but are "
                           f"not in keys_to_in_proj", fix)
    return CheckResult(NAME, Status.PASS, "")


def _nnunet_loader(subject: Subject, case: NetworkCase) -> CheckResult:
    """The real thing on one configuration: nnU-Net's loader, from a checkpoint with one class more."""
    from nnunetv2.run.load_pretrained_weights import load_pretrained_weights
    pretrained = case.build(subject.variant, True, num_classes=case.record.num_classes + 1)
    target = case.build(subject.variant, True)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / "checkpoint.pth"
        torch.save({"network_weights": pretrained.state_dict()}, checkpoint)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                load_pretrained_weights(target, str(checkpoint))
        except (AssertionError, RuntimeError) as error:
            return CheckResult(NAME, Status.FAIL, f"{describe(case)}: nnU-Net's load_pretrained_weights from a "
                               f"checkpoint with one class more failed: {str(error)[:200]}",
                               "keep every key outside '.seg_layers.' independent of num_classes")
    return CheckResult(NAME, Status.PASS, "")


def check_finetuning_keys(subject: Subject) -> CheckResult:
    smallest = min(subject.cases, key=lambda c: sum(c.record.arch_kwargs["features_per_stage"]))
    results = [*(_class_keys(subject, case) for case in subject.cases),
               _input_keys(subject, smallest), _nnunet_loader(subject, smallest)]
    return worst(NAME, results, f"num_classes changes only '.seg_layers.' keys ({len(subject.cases)} "
                 f"configurations); nnU-Net's load_pretrained_weights loads a checkpoint with one class more; "
                 f"keys_to_in_proj lists every input projection")
