"""The contract suite on DNA's U-Nets (which pass) and on small networks that each break one rule (which fail
exactly that check, with a message naming the fix)."""
from __future__ import annotations

import time

import pytest

from nnunet_archs.contract import deep_supervision, finetuning, graph_breaks, input_size, memory
from nnunet_archs.contract.base import Status
from nnunet_archs.contract.suite import BUILDS, CHECKS, OPTIONAL, run_contract
from nnunet_archs.custom_networks import resolve_network
from tests.contract.conftest import TINY_RECORDS

BROKEN = "tests.contract.broken_nets."
# (network, the check it fails, a fragment of the fix)
BROKEN_NETS = [
    ("ReversedOutputs", deep_supervision.OUTPUTS, "full resolution first"),
    ("HeadOnlyWithDeepSupervision", deep_supervision.PARAMETERS, "create every head whatever deep_supervision is"),
    ("UnusedParameters", deep_supervision.GRADIENTS, "remove the unused ones"),
    ("GraphBreak", graph_breaks.NAME, "free of Python decisions on tensor values"),
    ("HeadOutsideSegLayers", finetuning.NAME, "attribute named seg_layers"),
    ("WrongInputProjection", finetuning.NAME, "set self.keys_to_in_proj"),
    ("CropsIndivisibleInput", input_size.NAME, "raise a ValueError naming the multiple"),
    ("EstimateIgnoresPatch", memory.NAME, "count every feature map forward keeps"),
]


def statuses(network: str, cases, **kwargs) -> dict:
    start = time.perf_counter()
    results = {r.name: r for r in run_contract(resolve_network(network), cases, TINY_RECORDS, **kwargs)}
    print(f"{network}: {time.perf_counter() - start:.1f} s")
    for result in results.values():
        print(result.line())
    return results


@pytest.mark.parametrize("network", ["PlainConvUNet", "ResEncUNet"])
def test_dna_unets_pass_every_check(network, tiny_cases):
    results = statuses(network, tiny_cases)
    assert list(results) == [BUILDS, *(n for n in CHECKS if n not in OPTIONAL)]
    failed = {name: r.reason for name, r in results.items() if r.status == Status.FAIL}
    assert not failed
    # DNA's U-Nets fail with a torch shape error from inside when the strides do not divide the input
    assert results[input_size.NAME].status == Status.WARN
    assert "shape error from inside" in results[input_size.NAME].reason


# the two checks that take seconds run on the broken nets only where they are the check being broken (the nets
# are PlainConvUNet with one change, and PlainConvUNet passes both)
SLOW = {graph_breaks.NAME, memory.NAME}


@pytest.mark.parametrize("network, check, fix", BROKEN_NETS, ids=[n for n, _, _ in BROKEN_NETS])
def test_broken_net_fails_exactly_its_check(network, check, fix, tiny_cases):
    checks = [name for name in CHECKS if name not in SLOW | OPTIONAL or name == check]
    results = statuses(BROKEN + network, tiny_cases, checks=checks)
    assert {name for name, r in results.items() if r.status == Status.FAIL} == {check}
    assert fix in results[check].fix


def test_a_network_that_does_not_build_skips_the_rest(tiny_cases):
    results = statuses(BROKEN + "NotPlansKeywords", tiny_cases)
    assert results[BUILDS].status == Status.FAIL and "n_stages" in results[BUILDS].fix
    assert "unexpected keyword argument" in results[BUILDS].reason
    assert {r.status for name, r in results.items() if name != BUILDS} == {Status.SKIP}


def test_ddp_run_catches_an_unused_parameter(tiny_cases):
    """The real two-process run (``--ddp``) on the net the cheap gradient check fails; test_ddp.py holds the same
    run passing for our networks."""
    name = "DDP, 2 processes (gloo)"
    failing = statuses(BROKEN + "UnusedParameters", tiny_cases, checks=[name])[name]
    assert failing.status == Status.FAIL and "['unused.weight', 'unused.bias']" in failing.reason
    assert "unused" in failing.fix
