"""What every check takes (the network under check, its configurations and the networks built from them) and
what it returns (pass, warn or fail, the reason, and what to change)."""
from __future__ import annotations

import enum
import pydoc
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

import torch
from torch import nn

from nnunet_archs.architectures.zoo import has_deep_supervision
from nnunet_archs.contract.cases import NetworkCase
from nnunet_archs.real_plans import PlansRecord
from nnunet_archs.registry import ArchitectureVariant


class Status(enum.IntEnum):
    """Ordered by severity: a check reports its worst configuration."""

    PASS = 0
    SKIP = 1
    WARN = 2
    FAIL = 3


@dataclass
class CheckResult:
    name: str
    status: Status
    reason: str
    fix: str = ""

    def line(self, width: int = 47) -> str:
        text = f"{self.status.name:<4}  {self.name:<{width}} {self.reason}"
        return text + (f" -> {self.fix}" if self.fix and self.status != Status.PASS else "")


@dataclass
class Subject:
    """The network under check, its configurations, and the networks built from them (built once, as nnU-Net's
    trainer builds them: ``get_network_from_plans`` with initialisation, deep supervision on)."""

    variant: ArchitectureVariant
    cases: List[NetworkCase]
    memory_records: List[PlansRecord]  # real configurations, where the memory estimate is compared
    _networks: Dict[str, nn.Module] = field(default_factory=dict)

    @property
    def deep_supervision(self) -> bool:
        """Whether the network trains with nnU-Net's deep supervision (all but those trained without it, such as
        Swin UNETR, which ``network`` then builds without)."""
        return has_deep_supervision(pydoc.locate(self.variant.class_path))

    def network(self, case: NetworkCase) -> nn.Module:
        if case.name not in self._networks:
            torch.manual_seed(0)
            self._networks[case.name] = case.build(self.variant, deep_supervision=True)
        return self._networks[case.name]

    def shapes(self, case: NetworkCase, deep_supervision: bool = True, input_channels: Optional[int] = None,
               num_classes: Optional[int] = None) -> Dict[str, Tuple[int, ...]]:
        """Parameter and buffer shapes (state-dict keys), from a network built on the meta device: no memory,
        no time."""
        with torch.device("meta"):
            net = case.build(self.variant, deep_supervision, input_channels, num_classes, initialize=False)
        return {key: tuple(value.shape) for key, value in net.state_dict().items()}

    def meta_network(self, case: NetworkCase, input_channels: Optional[int] = None) -> nn.Module:
        with torch.device("meta"):
            return case.build(self.variant, True, input_channels, initialize=False)


def describe(case: NetworkCase) -> str:
    return f"{case.name} (patch {'x'.join(map(str, case.patch))})"


def worst(name: str, results: Iterable[CheckResult], passed: str) -> CheckResult:
    """The first failure, else the first warning, else a pass with ``passed`` as its reason."""
    found: List[CheckResult] = []
    for result in results:
        if result.status == Status.FAIL:
            return result
        found.append(result)
    warnings = [r for r in found if r.status == Status.WARN]
    return warnings[0] if warnings else CheckResult(name, Status.PASS, passed)

