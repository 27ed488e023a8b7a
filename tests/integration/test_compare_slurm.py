"""``nnunet-archs compare --executor slurm`` against a real one-node SLURM cluster (tests/slurm/start_cluster.sh,
which .ci/run starts before the suite): 2 architectures x 2 folds with every job submitted through submitit and
sbatch (trainings as a job array), a training cancelled with scancel and resubmitted with --c, without slurmdbd
(sacct disabled), on a 2D dataset without a test set, scored by Dice alone (test-set jobs and the surface metrics
are the local study's, test_compare.py).
Skipped, saying why, where no cluster can be started."""
from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from nnunet_archs.datasets import write_synthetic_dataset
from tests.integration.conftest import BIN, DATASET_2D_NO_TEST_SET
from tests.integration.test_compare import attempts, wait_for

pytestmark = pytest.mark.slow(230)

START_CLUSTER = Path(__file__).parents[1] / "slurm" / "start_cluster.sh"


@pytest.fixture(scope="module")
def cluster() -> str:
    result = subprocess.run(["bash", str(START_CLUSTER)], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        pytest.skip(f"no SLURM cluster could be started here: {(result.stderr or result.stdout).strip()}")
    return result.stdout.strip()


def slurm_id(job_dir: Path):
    """The SLURM job id of a job once its training epochs have begun."""
    log, running = job_dir / "log.txt", job_dir / "running.json"
    if not log.exists() or "Epoch 0" not in log.read_text():
        return None
    return json.loads(running.read_text())["slurm_job_id"]


def scontrol_state(job_id: str) -> str:
    text = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
    return next((field.split("=", 1)[1] for field in text.split() if field.startswith("JobState=")), "")


def test_compare_on_slurm_with_a_cancelled_training(nnunet, cluster):
    write_synthetic_dataset(nnunet.raw, DATASET_2D_NO_TEST_SET, "NoTestSet", shape=(64, 64), spacing=(1.0, 1.0),
                            n_test=0)
    report = nnunet.root / "study_slurm"
    command = [str(BIN / "nnunet-archs"), "compare", "-d", str(DATASET_2D_NO_TEST_SET), "-a", "PlainConvUNet", "KiUNet",
               "-c", "2d", "--folds", "0", "1", "-gpu_memory_target", "0.1", "-o", str(report), "--epochs", "2",
               "--iterations", "1", "--val-iterations", "1", "--metrics", "Dice", "--executor", "slurm",
               "-device", "cpu", "--max-parallel", "2", "--slurm-time", "30", "--slurm-cpus-per-job", "1",
               "--slurm-option", "comment=nnunet-archs-test"]
    driver = subprocess.Popen(command, env=nnunet.env, cwd=nnunet.root, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    cancelled_job = report / "jobs" / "train_KiUNet_fold0_seed0"
    cancelled = wait_for(lambda: slurm_id(cancelled_job), 600, "the SLURM training to start its epochs")
    subprocess.run(["scancel", cancelled], check=True)
    output = driver.communicate(timeout=1200)[0]
    assert driver.returncode == 0, output

    tries = attempts(report, cancelled_job.name)
    assert len(tries) == 2 and tries[0]["status"] in ("vanished", "killed") and tries[1]["status"] == "done", tries
    assert tries[0]["executor"] == "slurm" and tries[0]["job_id"] == cancelled
    assert "--c" in json.loads((cancelled_job / "job.json").read_text())["command"]
    assert scontrol_state(cancelled) == "CANCELLED"

    trainings = [report / "jobs" / f"train_{a}_fold{f}_seed0" for a in ("PlainConvUNet", "KiUNet") for f in (0, 1)]
    first_ids = [attempts(report, job.name)[0]["job_id"] for job in trainings]
    # trainings that become ready together go out as one array: an architecture's folds (its plans finish together;
    # another architecture's may finish earlier or later)
    arrays = [i.split("_")[0] for i in first_ids]
    assert all("_" in i for i in first_ids) and arrays[0] == arrays[1] and arrays[2] == arrays[3], first_ids
    for job in trainings:
        done = json.loads((job / "done.json").read_text())
        assert done["slurm_job_id"], job  # ran inside a SLURM allocation
        assert f"SLURM job {done['slurm_job_id']}" in (job / "log.txt").read_text()
    finished = json.loads((trainings[0] / "done.json").read_text())["slurm_job_id"]
    assert scontrol_state(finished) == "COMPLETED"
    results = (report / "results.md").read_text()
    assert "### Trainings" in results and f"slurm {cancelled} (" in results
    rows = list(csv.DictReader(open(report / "per_case.csv")))
    splits = json.loads((nnunet.preprocessed / nnunet.raw_dataset(DATASET_2D_NO_TEST_SET).name /
                         "splits_final.json").read_text())
    assert len(rows) == 2 * (len(splits[0]["val"]) + len(splits[1]["val"])) * 2  # architectures x cases x labels
    assert "Missing results" not in results and "Labelled test set" not in results
