"""``-pl nnUNetPlannerCustom`` is the one mechanism behind every planner: through it, ResidualEncoderUNet gets
exactly nnU-Net's own ResEnc M/L/XL plans on an isotropic and an anisotropic fingerprint of large images, and our
registry networks the plans their named planners give (patch, batch and architecture of every configuration;
tests/planning/test_custom.py shows that the planner classes are the same for every variant and preset, here
two are planned for real). All plannings run in the test process."""
from __future__ import annotations

import pytest

from nnunet_archs.planning.memory import RESENC_PRESETS
from nnunet_archs.planning.planners import planner_name
from tests.integration.conftest import DATASET_3D, claim_large_images
from tests.integration.plan_in_process import plan_all

pytestmark = pytest.mark.slow(30)

FINGERPRINTS = {"isotropic": (511, [256, 256, 256], [1.0, 1.0, 1.0]),
                "anisotropic": (512, [96, 384, 384], [2.5, 0.8, 0.8])}
# fingerprint -> network -> presets compared: nnU-Net's ResEnc presets for ResEncUNet, our named planners for
# the others
COMPARED = {"isotropic": {"ResEncUNet": list(RESENC_PRESETS)},
            "anisotropic": {"ResEncUNet": list(RESENC_PRESETS), "PlainConvUNet": ["M"], "UIUNet-minimal": ["M"]}}


def specs(fingerprint: str) -> list:
    """(network, preset, named planner's spec, custom planner's spec); the custom planner is given the preset by
    name for ResEnc and by its memory (-gpu_memory_target) for the others, to cover both ways."""
    return [(network, preset, {"pl": planner_name(network, preset)},
             {"pl": "nnUNetPlannerCustom", "network": network,
              **({"preset": preset} if network == "ResEncUNet" else {"gpu_memory_target": RESENC_PRESETS[preset][0]})})
            for network, presets in COMPARED[fingerprint].items() for preset in presets]


@pytest.fixture(scope="module")
def planned(nnunet, fingerprint_3d) -> dict:
    """(fingerprint, network, preset) -> (what the named planner planned, what the custom planner planned)."""
    compared = []
    for fingerprint, (dataset_id, shape, spacing) in FINGERPRINTS.items():
        claim_large_images(nnunet, DATASET_3D, dataset_id, shape, spacing)
        compared += [((fingerprint, network, preset), {"d": dataset_id, **named}, {"d": dataset_id, **custom})
                     for network, preset, named, custom in specs(fingerprint)]
    plans = plan_all(nnunet, [s for _, named, custom in compared for s in (named, custom)])
    return {key: (plans[2 * i], plans[2 * i + 1]) for i, (key, _, _) in enumerate(compared)}


def test_the_custom_planner_reproduces_nnunets_resenc_presets_and_our_named_planners(planned):
    assert {(f, "ResEncUNet", p) for f in FINGERPRINTS for p in RESENC_PRESETS} <= set(planned)
    for key, (named_plan, custom_plan) in planned.items():
        assert {"2d", "3d_fullres"} <= set(named_plan)
        assert custom_plan == named_plan, key
