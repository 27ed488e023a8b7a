"""``nnUNetPlannerCustom`` made from a network name or import path: for every registry variant and preset it is
the named planner (same name, plans identifier, network, references, memory factor and nnU-Net base planner);
bad input (a class path that does not import, a class that is not an nn.Module, kwargs that do not parse, no or
a foreign calibration) ends in one message naming the fix, from the command line too."""
from __future__ import annotations

import pytest

from nnunet_archs.cli import main
from nnunet_archs.planning.custom import choose_preset, custom_planner
from nnunet_archs.planning.memory import RESENC_PRESETS
from nnunet_archs.planning.planners import PLANNERS

ATTRIBUTES = ("__name__", "variant", "estimate_per_byte", "memory_model", "preset_gb", "reference_3d", "reference_2d",
              "default_plans_name")


@pytest.mark.parametrize("name", list(PLANNERS))
def test_every_named_planner_is_the_custom_planner_of_its_variant(name):
    named = PLANNERS[name]
    preset = next(p for p in RESENC_PRESETS if name.endswith(p) and not name.endswith("X" + p))
    for custom in (custom_planner(named.variant.name, preset=preset),
                   custom_planner(named.variant.name, gpu_memory_target=RESENC_PRESETS[preset][0])):
        assert [getattr(custom, a) for a in ATTRIBUTES] == [getattr(named, a) for a in ATTRIBUTES]
        assert [b.__name__ for b in custom.__mro__] == [b.__name__ for b in named.__mro__]


def test_every_generated_planner_name_is_spelled_in_the_planners_module():
    from nnunet_archs.planning import planners
    assert {n for n in planners.__all__ if n.startswith("nnUNetPlanner")} == set(PLANNERS)
    assert all(hasattr(planners, n) for n in planners.__all__)


def test_resenc_is_planned_with_nnunets_resenc_planner():
    assert "ResEncUNetPlanner" in [b.__name__ for b in custom_planner("ResEncUNet").__mro__]


@pytest.mark.parametrize("preset, target, expected", [("L", None, "L"), (None, None, "M"), (None, 8, "M"),
                                                      (None, 24, "L"), (None, 40, "XL"), (None, 16, "L"),
                                                      (None, 11, "M"), ("XL", 12, "XL")])
def test_preset_from_name_or_nearest_memory(preset, target, expected):
    assert choose_preset(preset, target) == expected


@pytest.fixture
def nnunet_folders(tmp_path, monkeypatch):
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / name).mkdir()
        monkeypatch.setenv(name, str(tmp_path / name))


def fails_with(capsys, argv, *fragments) -> None:
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(f"nnunet-archs {argv[0]}: error: "), error
    for fragment in fragments:
        assert fragment in error, error


PLAN = ["plan_experiment", "-d", "1", "-pl", "nnUNetPlannerCustom"]
CUSTOM = "tests.integration.custom_net.BottleneckResUNet"


@pytest.mark.parametrize("argv, fragments", [
    (PLAN, ["needs --network"]),
    (PLAN + ["--network", "no_such_package.nets.Net"], ["no module named 'no_such_package'", "PYTHONPATH"]),
    (PLAN + ["--network", "torch.nn.NoSuchNet"], ["module 'torch.nn' has no attribute 'NoSuchNet'"]),
    (PLAN + ["--network", "collections.OrderedDict"], ["not a torch.nn.Module subclass"]),
    (PLAN + ["--network", "KiUnet"], ["neither an architecture name", "KiUNet"]),
    (PLAN + ["--network", "KiUNet", "--kwargs", "{pool_type: max}"], ["--kwargs is not valid JSON"]),
    (PLAN + ["--network", "KiUNet", "--kwargs", "[1]"], ["--kwargs must be a JSON object"]),
    (PLAN + ["--network", "KiUNet", "--kwargs", '{"pooling": "max"}'], ["['pooling']: not a parameter of "
                                                                        "DynamicKiUNet", "pool_type"]),
    (PLAN + ["--network", CUSTOM], ["has no built-in calibration", f"nnunet-archs calibrate {CUSTOM}"]),
    (PLAN + ["--network", "KiUNet", "-preset", "S"], ["-preset must be one of ['M', 'L', 'XL']"]),
    (PLAN + ["--network", "KiUNet", "--calibration", "missing.json"], ["cannot read calibration file missing.json"]),
    (["plan_experiment", "-d", "1", "-pl", "ExperimentPlanner", "--network", "KiUNet"],
     ["--network is only for -pl nnUNetPlannerCustom"]),
    (["check", "no_such_package.Net"], ["no module named 'no_such_package'"]),
    (["calibrate", "collections.OrderedDict"], ["not a torch.nn.Module subclass"]),
])
def test_bad_input_gets_one_clear_message(capsys, nnunet_folders, argv, fragments):
    fails_with(capsys, argv, *fragments)
