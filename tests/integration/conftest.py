"""A throw-away nnU-Net environment (raw/preprocessed/results folders, synthetic datasets) and helpers that
run the real command-line programs in subprocesses, as a user would."""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pytest

from nnunet_archs.datasets import write_synthetic_dataset

BIN = Path(sys.executable).parent
# every dataset of the session's nnU-Net folders, one id each (two folders with one id make the id ambiguous)
DATASET_3D, DATASET_2D, DATASET_LARGE, DATASET_CASCADE, DATASET_2D_NO_TEST_SET = 501, 502, 503, 504, 505
DATASET_ZOO_ISOTROPIC = 506
# A tiny GPU memory target shrinks the planned patch so that CPU training steps take about a second.
TINY_GPU_TARGET = "0.1"
SHORT_TRAINING = {"NNUNET_ARCHS_EPOCHS": "1", "NNUNET_ARCHS_ITERATIONS": "2", "NNUNET_ARCHS_VAL_ITERATIONS": "1",
                  "NNUNET_ARCHS_NO_MIRRORING": "1", "nnUNet_n_proc_DA": "0"}


class NNUNetEnvironment:
    def __init__(self, root: Path):
        self.root = root
        self.raw, self.preprocessed, self.results = root / "raw", root / "preprocessed", root / "results"
        for folder in (self.raw, self.preprocessed, self.results):
            folder.mkdir()
        self.env = {**os.environ, "nnUNet_raw": str(self.raw), "nnUNet_preprocessed": str(self.preprocessed),
                    "nnUNet_results": str(self.results), "nnUNet_def_n_proc": "1", "nnUNet_compile": "f",
                    # the programs import modules of the tests (a network defined in them, in-process helpers)
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                                os.environ.get("PYTHONPATH")]))}
        self.env["nnUNet_extTrainer"] = self.run("nnunet-archs", "trainers-path").stdout.strip()

    def run(self, program: str, *args: str, extra_env: Optional[Dict[str, str]] = None, check: bool = True,
            timeout: int = 600) -> subprocess.CompletedProcess:
        env = {**self.env, **(extra_env or {})}
        result = subprocess.run([str(BIN / program), *args], env=env, cwd=self.root, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{program} {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    @contextlib.contextmanager
    def variables(self, extra_env: Optional[Dict[str, str]] = None):
        """This environment's variables in the test process for the duration (nnU-Net reads its folder variables
        when it uses them), for what needs no process of its own: each start-up imports torch and nnU-Net."""
        with pytest.MonkeyPatch.context() as patch:
            for name, value in {**self.env, **(extra_env or {})}.items():
                patch.setenv(name, value)
            yield

    def run_in_process(self, *args: str, extra_env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
        """``nnunet-archs ARGS`` through its ``main`` in this process (``variables``): for refusals and quick
        planning. The console script's own exit status is checked in tests/comparison/test_profile.py."""
        from nnunet_archs.cli import main
        stdout, stderr = io.StringIO(), io.StringIO()
        with self.variables(extra_env), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                status = main(list(args))
            except SystemExit as exit_:  # argparse's refusals
                status = exit_.code
        return subprocess.CompletedProcess(["nnunet-archs", *args], status, stdout.getvalue(), stderr.getvalue())

    def plans_path(self, dataset_id: int, plans_name: str) -> Path:
        return next(self.preprocessed.glob(f"Dataset{dataset_id:03d}_*")) / f"{plans_name}.json"

    def raw_dataset(self, dataset_id: int) -> Path:
        return next(self.raw.glob(f"Dataset{dataset_id:03d}_*"))

    def fold_folder(self, dataset_id: int, trainer: str, plans: str, configuration: str, fold: str = "0") -> Path:
        return next(self.results.glob(f"Dataset{dataset_id:03d}_*/{trainer}__{plans}__{configuration}/fold_{fold}"))

    def train(self, dataset_id: int, configuration: str, plans: str, trainer: str, fold: str = "0",
              mirroring: bool = False) -> subprocess.CompletedProcess:
        """A short stock nnUNetv2_train; ``mirroring`` keeps nnU-Net's mirroring augmentation and the mirror axes
        it stores for test-time augmentation."""
        return self.run("nnUNetv2_train", str(dataset_id), configuration, fold, "-p", plans, "-tr", trainer,
                        "-device", "cpu", extra_env={**SHORT_TRAINING, "NNUNET_ARCHS_NO_MIRRORING": "0" if mirroring
                                                     else "1"})

    def predict(self, dataset_id: int, configuration: str, plans: str, trainer: str, output: Path, fold: str = "0",
                mirroring: bool = False, extra: Sequence[str] = ()) -> None:
        """Stock nnUNetv2_predict on the held-out cases; ``mirroring`` leaves nnU-Net's test-time mirroring on."""
        self.run("nnUNetv2_predict", "-i", str(self.raw_dataset(dataset_id) / "imagesTs"), "-o", str(output),
                 "-d", str(dataset_id), "-c", configuration, "-p", plans, "-tr", trainer, "-f", fold, "-npp", "0",
                 "-nps", "0", "-device", "cpu", "--disable_progress_bar", *([] if mirroring else ["--disable_tta"]),
                 *extra)

    def evaluate(self, dataset_id: int, prediction: Path) -> dict:
        """Stock nnUNetv2_evaluate_folder against the held-out labels; returns the summary."""
        self.run("nnUNetv2_evaluate_folder", str(self.raw_dataset(dataset_id) / "labelsTs"), str(prediction),
                 "-djfile", str(prediction / "dataset.json"), "-pfile", str(prediction / "plans.json"), "-np", "1")
        return json.loads((prediction / "summary.json").read_text())

    def predict_and_evaluate(self, dataset_id: int, configuration: str, plans: str, trainer: str,
                             mirroring: bool = False) -> dict:
        output = self.root / f"prediction_{dataset_id}_{configuration}_{plans}_{trainer}"
        self.predict(dataset_id, configuration, plans, trainer, output, mirroring=mirroring)
        return self.evaluate(dataset_id, output)


def assert_finite_dice(summary: dict, labels: List[str] = ("1", "2")) -> None:
    for label in labels:
        dice = summary["mean"][label]["Dice"]
        assert math.isfinite(dice) and 0 <= dice <= 1, f"label {label}: Dice {dice}"
    assert math.isfinite(summary["foreground_mean"]["Dice"])


@pytest.fixture(scope="session")
def nnunet(tmp_path_factory) -> NNUNetEnvironment:
    environment = NNUNetEnvironment(tmp_path_factory.mktemp("nnunet"))
    write_synthetic_dataset(environment.raw, DATASET_3D, "Synthetic3D", shape=(16, 32, 32), spacing=(3.0, 1.0, 1.0))
    write_synthetic_dataset(environment.raw, DATASET_2D, "Synthetic2D", shape=(64, 64), spacing=(1.0, 1.0))
    return environment


@pytest.fixture(scope="session")
def fingerprint_3d(nnunet: NNUNetEnvironment) -> int:
    """The 3D dataset's fingerprint (stock nnUNetv2_extract_fingerprint; planning reads nothing else)."""
    nnunet.run("nnUNetv2_extract_fingerprint", "-d", str(DATASET_3D), "-np", "1")
    return DATASET_3D


@pytest.fixture(scope="session")
def kiunet_plans(nnunet: NNUNetEnvironment, fingerprint_3d: int) -> str:
    """KiU-Net M plans (at a tiny GPU target) for the 3D dataset, planned and preprocessed by our CLI (which reuses
    the fingerprint that ``fingerprint_3d`` extracted, as nnU-Net does)."""
    nnunet.run("nnunet-archs", "plan_and_preprocess", "-d", str(DATASET_3D), "-pl", "nnUNetPlannerKiUNetM",
               "-gpu_memory_target", TINY_GPU_TARGET, "-c", "3d_fullres", "-np", "1", "--no_pbar")
    return "nnUNetKiUNetMPlans"


def claim_large_images(nnunet: NNUNetEnvironment, source_id: int, dataset_id: int, shape: List[int],
                       spacing: List[float]) -> int:
    """Dataset ``dataset_id``: the files of ``source_id`` (which must have a fingerprint: ``fingerprint_3d``) with a
    fingerprint claiming images of ``shape`` at ``spacing``, so that planners have to trade patch size against memory
    (planning reads only the fingerprint)."""
    import json
    import shutil
    source = nnunet.raw_dataset(source_id)
    name = f"Dataset{dataset_id:03d}_Large"
    shutil.copytree(source, nnunet.raw / name)
    fingerprint = json.loads((next(nnunet.preprocessed.glob(f"Dataset{source_id:03d}_*")) /
                              "dataset_fingerprint.json").read_text())
    cases = len(fingerprint["shapes_after_crop"])
    fingerprint["shapes_after_crop"] = [list(shape)] * cases
    fingerprint["spacings"] = [list(spacing)] * cases
    (nnunet.preprocessed / name).mkdir()
    (nnunet.preprocessed / name / "dataset_fingerprint.json").write_text(json.dumps(fingerprint))
    return dataset_id


CUSTOM_NETWORK = "tests.integration.custom_net.BottleneckResUNet"


@pytest.fixture(scope="session")
def custom_calibration(nnunet: NNUNetEnvironment) -> Path:
    """``nnunet-archs calibrate`` of the network defined in the tests (no compute_conv_feature_map_size), as the
    README's "Benchmark your own network" runs it; planned and trained through ``compare`` in test_compare.py."""
    from nnunet_archs.real_plans import ANISOTROPIC_3D
    calibration = nnunet.root / "bottleneck_res_unet.json"
    result = nnunet.run_in_process("calibrate", CUSTOM_NETWORK, "--builtin", "katieliuu/cs231n:nnUNetPlans.json#2d",
                                   ANISOTROPIC_3D, "--bottlenecks", "2", "-o", str(calibration))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return calibration
