"""``nnunet-archs compare`` end to end with the local executor (submitit's local backend, the code path of the SLURM
executor): 3 architectures x 2 folds on the tiny 2D dataset, two jobs at once, and the faults a study must survive:
a training killed mid-run (continued with --c), a job that fails (only its dependants stop, the report names it), a
killed driver (--resume adopts what still runs and recomputes nothing that finished). Then the report is complete
and ``nnunet-archs report`` reproduces its numbers. The networks are UIU-Net (this is its end-to-end test through
our planner, stock nnUNetv2_train and nnUNetv2_predict), a network of the user's, and Swin UNETR (MONAI's, trained
without deep supervision: the study picks the trainer for it). (Bad input: test_compare_errors.py.)"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from nnunet_archs.training.environment import EPOCH_LOG
from tests.integration.conftest import BIN, CUSTOM_NETWORK, DATASET_2D

pytestmark = pytest.mark.slow(430)

# UIU-Net beside a network of the user's, given by import path (planned by nnUNetPlannerCustom), and a network users
# compare against
ARCHITECTURES = ["UIUNet", CUSTOM_NETWORK, "SwinUNETR"]
CUSTOM = "BottleneckResUNet"
# nnU-Net's mirroring kept: UIU-Net's test-set prediction is its end-to-end nnUNetv2_predict with default TTA
BUDGET = ["--epochs", "2", "--iterations", "1", "--val-iterations", "1", "--mirroring"]
# the verdict's endpoint and an equivalence margin, through the command line; one object metric for the blobs
# (report --metrics adds the others from the stored predictions: test_report_adds_metrics_without_training_again)
VERDICT = ["--primary", "Dice:small", "--margin", "Dice=0.05", "--metrics", "Dice", "NSD", "HD95", "DetectionRecall",
           "--object-labels", "small"]


def compare_args(report: Path, *extra: str):
    return ["compare", "-d", str(DATASET_2D), "-a", *ARCHITECTURES, "-c", "2d", "--folds", "0", "1",
            "-gpu_memory_target", "0.1", "-o", str(report), "--max-parallel", "2", *BUDGET, *VERDICT, *extra]


def wait_for(condition, timeout: float, what: str):
    start = time.time()
    while time.time() - start < timeout:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def training_pid(job_dir: Path):
    """The pid of the nnUNetv2_train process that a job's runner started, once its epochs have begun."""
    log = job_dir / "log.txt"
    if not log.exists() or "Epoch 0" not in log.read_text():
        return None
    runner = json.loads((job_dir / "running.json").read_text())["pid"]
    children = subprocess.run(["pgrep", "-P", str(runner)], capture_output=True, text=True).stdout.split()
    return int(children[0]) if children else None


def attempts(report: Path, job: str):
    return json.loads((report / "state.json").read_text())["jobs"][job]["attempts"]


def most_jobs_at_once(report: Path) -> int:
    """The largest number of jobs whose run times (from their done-markers) overlap."""
    intervals = []
    for marker in (report / "jobs").glob("*/done.json"):
        end = marker.stat().st_mtime
        intervals.append((end - json.loads(marker.read_text())["seconds"], end))
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = best = 0
    for _, change in events:
        running += change
        best = max(best, running)
    return best


def done_markers(report: Path):
    return {p.parent.name: (p.stat().st_mtime_ns, p.read_text()) for p in (report / "jobs").glob("*/done.json")}


@pytest.fixture(scope="module")
def study(nnunet, custom_calibration):
    """The whole fault scenario, run once; the tests below read what it left."""
    report = nnunet.root / "study_local"
    calibration = ["--calibration", str(custom_calibration)]
    driver = subprocess.Popen([str(BIN / "nnunet-archs"), *compare_args(report, *calibration)], env=nnunet.env,
                              cwd=nnunet.root,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # the last job before the custom network's test-set scores, long before it can start: it must fail
    sabotage = report / "test_predictions" / f"{CUSTOM}_seed0"
    wait_for(lambda: (report / "jobs").is_dir(), 120, "the report folder")
    sabotage.parent.mkdir(exist_ok=True)
    sabotage.write_text("a file where nnUNetv2_predict needs its output folder: this prediction must fail")
    killed_job = report / "jobs" / "train_UIUNet_fold1_seed0"
    os.kill(wait_for(lambda: training_pid(killed_job), 400, "the training to start its epochs"), signal.SIGKILL)
    wait_for(lambda: len(attempts(report, killed_job.name)) == 2, 120, "the killed training to be resubmitted")
    driver.kill()  # the driver dies; the jobs it started do not
    first_output = driver.communicate()[0]
    finished_before = done_markers(report)

    resumed = nnunet.run("nnunet-archs", *compare_args(report, "--resume", *calibration), check=False, timeout=900)
    finished_after_resume = done_markers(report)
    sabotage.unlink()
    completed = nnunet.run("nnunet-archs", *compare_args(report, "--resume", *calibration), timeout=900)
    return {"report": report, "first_output": first_output,
            "finished_before": finished_before, "resumed": resumed, "finished_after_resume": finished_after_resume,
            "completed": completed, "finished_at_end": done_markers(report)}


def test_the_study_prints_its_summary_first(study):
    lines = study["first_output"].splitlines()
    assert lines[0] == f"Study of Dataset{DATASET_2D}_Synthetic2D, configuration 2d: 3 networks: {CUSTOM_NETWORK} " \
                       f"and SwinUNETR each tested against the baseline UIUNet", lines[:8]
    assert lines[1] == "Trainings: 3 network(s) x 2 folds x 1 training seed(s) = 6, each 2 epoch(s) x 1 iterations, " \
                       "mirroring"
    assert lines[2].startswith("Device: cpu (no CUDA GPU is visible") and lines[3].startswith("Jobs: 25 (")


def test_jobs_run_concurrently_and_a_killed_training_continues_with_dash_c(study):
    report = study["report"]
    assert most_jobs_at_once(report) == 2, study["first_output"]
    tries = attempts(report, "train_UIUNet_fold1_seed0")
    assert [a["status"] for a in tries] == ["killed", "done"]
    log = (report / "jobs" / "train_UIUNet_fold1_seed0" / "log.txt").read_text()
    assert "-tr nnUNetTrainerBudget_seed0 -device cpu --c" in log and "exit status -9" in log


def test_a_failed_job_stops_only_its_dependants_and_the_report_names_it(study):
    resumed, report = study["resumed"], study["report"]
    assert resumed.returncode == 1 and f"predict_test_{CUSTOM}_seed0: exit status 1" in resumed.stderr, \
        resumed.stderr
    assert f"evaluate_test_{CUSTOM}_seed0: blocked" in resumed.stdout
    assert f"evaluate_{CUSTOM}_fold1_seed0" in study["finished_after_resume"]  # not a dependant: it ran
    assert "train_UIUNet_fold1_seed0" in study["finished_after_resume"]  # adopted from the killed driver
    assert "jobs done earlier, not run again" in resumed.stdout
    for job, marker in study["finished_before"].items():  # nothing that had finished ran again
        assert study["finished_after_resume"][job] == marker, job


def test_the_completed_study_has_every_per_case_row_a_report_and_plots(study, nnunet):
    report = study["report"]
    for job, marker in study["finished_after_resume"].items():
        assert study["finished_at_end"][job] == marker, job
    assert "Missing results" not in (report / "results.md").read_text()
    rows = list(csv.DictReader(open(report / "per_case.csv")))
    cells = {(r["architecture"], r["fold"], r["case"], r["label"], r["metric"]) for r in rows}
    splits = json.loads((nnunet.preprocessed / nnunet.raw_dataset(DATASET_2D).name / "splits_final.json").read_text())
    cases = {(str(f), c) for f in (0, 1) for c in splits[f]["val"]}
    assert {(r["fold"], r["case"]) for r in rows} == cases
    # architectures x validation cases x (labels x metrics + the small label's object metric)
    assert len(rows) == len(cells) == len(ARCHITECTURES) * len(cases) * (2 * 3 + 1)
    assert {r["fold"] for r in rows} == {"0", "1"} and {r["architecture"] for r in rows} == set(ARCHITECTURES)
    assert {r["label"] for r in rows if r["metric"] == "DetectionRecall"} == {"small"}
    test_rows = list(csv.DictReader(open(report / "per_case_test.csv")))
    assert len(test_rows) == len(ARCHITECTURES) * 2 * (2 * 3 + 1) and {r["fold"] for r in test_rows} == {"ensemble"}
    objects = list(csv.DictReader(open(report / "per_object.csv")))
    references = {a: sorted((r["case"], r["object"], r["size_mm3"]) for r in objects
                            if r["side"] == "reference" and r["architecture"] == a) for a in ARCHITECTURES}
    assert {r["label"] for r in objects} == {"small"} and references[ARCHITECTURES[0]]
    assert references[ARCHITECTURES[0]] == references[ARCHITECTURES[1]]  # one reference, whoever predicted
    results = (report / "results.md").read_text()
    assert f"| {CUSTOM_NETWORK} |" in results and "Δ Dice vs UIUNet" in results
    assert f"{CUSTOM_NETWORK} vs UIUNet:" in results and "Dice (label small)" in results
    assert "Ranking by the primary endpoint: 1. " in results and "Rank stability (HD95, secondary)" in results
    assert "Analysis as pre-registered in study.json when the study started (plan hash " in results
    assert "### Secondary endpoints" in results and "Labelled test set" in results and "| 64x64 |" in results
    assert "### Detection by object size" in results and (report / "detection_by_size_small.png").exists()
    # inference cost, measured: the final validation of every training, and each test case by the 2 fold models
    timing = json.loads((report / "test_predictions" / "UIUNet_seed0" / "nnunet_archs_inference.json").read_text())
    assert timing["cases"] == 2 and timing["models"] == 2 and timing["mirroring"] and len(timing["per_case"]) == 2
    assert all(case["seconds"] > 0 and case["voxels"] == 64 * 64 for case in timing["per_case"])
    assert timing["max_memory_allocated_bytes"] is None  # a CPU has no allocator peak to report
    fold = nnunet.fold_folder(DATASET_2D, "nnUNetTrainerBudget_seed0", "nnUNetStudy_study_local_UIUNet", "2d", "1")
    validation = json.loads((fold / "nnunet_archs_validation.json").read_text())
    assert validation["cases"] == len(splits[1]["val"]) and validation["seconds"] > 0 and validation["mirroring"]
    assert "### Cost: training and inference" in results and "(2 models; " in results
    assert "Jobs ran up to 2 at a time on this CPU" in results
    costs = {r["architecture"]: r for r in csv.DictReader(open(report / "results.csv")) if r["set"] == "test"}
    assert float(costs["UIUNet"]["test_seconds_per_case"]) > 0 and costs["UIUNet"]["nvidia_smi_equivalent_bytes"] == ""
    assert float(costs[CUSTOM_NETWORK]["validation_seconds_per_case"]) > 0
    assert (report / "pareto_inference.png").stat().st_size > 5_000
    # a few cases per fold here: a verdict needs 10 paired cases, and the intervals carry the small-sample mark
    assert "too few paired cases to conclude" in results and "† fewer than 10 cases" in results
    table = list(csv.DictReader(open(report / "results.csv")))
    primary = [r for r in table if r["role"] == "primary" and r["set"] == "cross-validation"]
    assert {(r["metric"], r["label"]) for r in primary} == {("Dice", "small")}
    assert [r["verdict"] for r in primary if r["architecture"] == CUSTOM_NETWORK] == ["too few cases"]
    assert {r["margin"] for r in primary if r["architecture"] == CUSTOM_NETWORK} == {"0.05"}
    assert "\\toprule" in (report / "results.tex").read_text()
    for plot in ("per_case_Dice.png", "per_case_HD95.png", "pareto_memory.png", "pareto_time.png"):
        assert (report / plot).stat().st_size > 5_000, plot
    commands = (report / "commands.sh").read_text()
    assert f"nnUNetv2_train 502 2d 0 -p nnUNetStudy_study_local_{CUSTOM} -tr nnUNetTrainerBudget_seed0 -device cpu" \
        in commands
    assert f"-pl nnUNetPlannerCustom --network {CUSTOM_NETWORK} --calibration" in commands
    # Swin UNETR trained and predicted with the trainer without deep supervision, picked by the study
    assert "-p nnUNetStudy_study_local_SwinUNETR -tr nnUNetTrainerBudgetNoDeepSupervision_seed0 -device cpu" \
        in commands and "-pl nnUNetPlannerSwinUNETRM" in commands
    assert (nnunet.fold_folder(DATASET_2D, "nnUNetTrainerBudgetNoDeepSupervision_seed0",
                               "nnUNetStudy_study_local_SwinUNETR", "2d", "1") / "checkpoint_final.pth").exists()


def test_uiunet_planned_by_our_planner_predicted_with_test_time_mirroring(study, nnunet):
    plans = json.loads(nnunet.plans_path(DATASET_2D, "nnUNetStudy_study_local_UIUNet").read_text())
    assert plans["configurations"]["2d"]["architecture"]["network_class_name"] == \
        "nnunet_archs.architectures.uiunet.DynamicUIUNet3D"
    fold = nnunet.fold_folder(DATASET_2D, "nnUNetTrainerBudget_seed0", "nnUNetStudy_study_local_UIUNet", "2d")
    checkpoint = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert tuple(checkpoint["inference_allowed_mirroring_axes"]) == (0, 1)  # nnU-Net's default mirroring kept
    predict = json.loads((study["report"] / "jobs" / "predict_test_UIUNet_seed0" / "job.json").read_text())["command"]
    assert predict[0].endswith("nnunet-archs") and predict[1] == "predict" and "--disable_tta" not in predict
    # two epochs on a CPU: no allocator peak to report
    assert [json.loads(line)["max_memory_allocated_bytes"]
            for line in (fold / EPOCH_LOG).read_text().splitlines()] == [None] * 2


def test_report_reproduces_the_numbers_from_per_case_csv(study, nnunet):
    report = study["report"]
    before = (report / "results.csv").read_text()
    redrawn = nnunet.run_in_process("report", str(report))
    assert redrawn.returncode == 0, redrawn.stderr
    assert (report / "results.csv").read_text() == before and f"| {CUSTOM_NETWORK} |" in redrawn.stdout


def test_resume_with_other_settings_is_refused(study, nnunet):
    before = (study["report"] / "results.csv").read_text()
    result = nnunet.run_in_process(*compare_args(study["report"], "--resume", "--seed", "1", "--training-seeds", "0",
                                                 "1", "--margin", "Dice=0.1", "--failures", "exclude",
                                                 "--calibration", str(nnunet.root / "bottleneck_res_unet.json")))
    assert result.returncode == 2, result.stderr
    assert "(--seed, --training-seeds, --margin, --failures differ)" in result.stderr, result.stderr
    assert (study["report"] / "results.csv").read_text() == before  # nothing computed is lost


def test_a_per_case_table_missing_columns_is_a_clear_error(study, nnunet, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    for name in ("study.json", "layout.json"):
        (copy / name).parent.mkdir(exist_ok=True)
        shutil.copy(study["report"] / name, copy / name)
    layout = json.loads((copy / "layout.json").read_text())
    layout["report"] = str(copy)
    (copy / "layout.json").write_text(json.dumps(layout))
    (copy / "per_case.csv").write_text("architecture,fold,case,label,value\nKiUNet,0,a,small,0.5\n")
    result = nnunet.run_in_process("report", str(copy))
    assert result.returncode == 2 and "line 1: no column metric" in result.stderr, result.stderr


def test_report_switches_the_failure_convention_without_evaluating_again(study, nnunet, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(study["report"], copy, ignore=shutil.ignore_patterns("submitit", "test_predictions"))
    layout = json.loads((copy / "layout.json").read_text())
    layout["report"] = str(copy)
    (copy / "layout.json").write_text(json.dumps(layout))
    evaluated = {p: p.stat().st_mtime_ns for p in (copy / "metrics").iterdir()}
    result = nnunet.run_in_process("report", str(copy), "--failures", "exclude")
    assert result.returncode == 0, result.stderr
    assert {p: p.stat().st_mtime_ns for p in (copy / "metrics").iterdir()} == evaluated
    rows = list(csv.DictReader(open(copy / "results.csv")))
    assert {r["failure_convention"] for r in rows} == {"exclude"} and "failures scored exclude" in result.stdout
    # compare registered the worst-case convention: this verdict is post hoc, and says why
    assert "Post hoc analysis" in result.stdout and "failures: worst -> exclude" in result.stdout
    assert {r["analysis"].split(" ")[0] for r in rows} == {"post"}
    worst = {(r["set"], r["architecture"], r["metric"], r["label"]): r for r in
             csv.DictReader(open(study["report"] / "results.csv"))}
    for row in rows:  # failures are left out of HD95 now, counted as before, and Dice does not change
        before = worst[(row["set"], row["architecture"], row["metric"], row["label"])]
        assert row["n_missed"] == before["n_missed"] and row["n_spurious"] == before["n_spurious"]
        if row["metric"] == "HD95":
            assert int(row["n_cases"]) <= int(before["n_cases"])
        else:
            assert row["mean"] == before["mean"]


def test_report_adds_metrics_without_training_again(study, nnunet, tmp_path):
    """``report DIR --metrics`` on a copy of the finished study: the object metrics it did not measure are computed
    from the stored validation and test predictions; no job runs again."""
    import shutil
    copy = tmp_path / "added"
    shutil.copytree(study["report"], copy, ignore=shutil.ignore_patterns("submitit"))
    layout = json.loads((copy / "layout.json").read_text())
    layout["report"] = str(copy)
    (copy / "layout.json").write_text(json.dumps(layout))
    markers = done_markers(copy)
    result = nnunet.run_in_process("report", str(copy), "--metrics", "DetectionF1", "FalsePositiveObjects")
    assert result.returncode == 0, result.stderr
    assert "Added DetectionF1, FalsePositiveObjects from the stored predictions" in result.stdout
    assert done_markers(copy) == markers
    assert json.loads((copy / "study.json").read_text())["metrics"][-2:] == ["DetectionF1", "FalsePositiveObjects"]
    rows = list(csv.DictReader(open(copy / "per_case.csv")))
    recall = {(r["architecture"], r["case"]) for r in rows if r["metric"] == "DetectionRecall"}
    assert {(r["architecture"], r["case"]) for r in rows if r["metric"] == "DetectionF1"} == recall
    assert any(r["metric"] == "FalsePositiveObjects" for r in csv.DictReader(open(copy / "per_case_test.csv")))
    again = nnunet.run_in_process("report", str(copy), "--metrics", "DetectionF1")  # nothing new: a plain redraw
    assert again.returncode == 0 and "Added" not in again.stdout
    refused = nnunet.run_in_process("report", str(copy), "--metrics", "Jaccard")
    assert refused.returncode == 2 and "unknown metric(s) ['Jaccard']" in refused.stderr


def copied_study(study, destination: Path, edit=None) -> Path:
    """The finished study's report folder copied elsewhere, its per-case values edited by ``edit`` (a second
    "dataset" for the combined report, which reads only these stored files)."""
    import shutil
    shutil.copytree(study["report"], destination, ignore=shutil.ignore_patterns("submitit", "test_predictions"))
    if edit is not None:
        table = pd.read_csv(destination / "per_case.csv", dtype=str)
        edit(table)
        table.to_csv(destination / "per_case.csv", index=False)
    return destination


def test_two_datasets_combine_into_one_ranking(study, nnunet, tmp_path):
    import numpy as np

    def swap(table):  # the second "dataset": the custom network clearly ahead on the primary endpoint
        rows = (table["architecture"] == CUSTOM_NETWORK) & (table["metric"] == "Dice")
        table.loc[rows, "value"] = np.clip(table.loc[rows, "value"].astype(float) + 0.5, 0, 1).astype(str)
    first = copied_study(study, tmp_path / "first_dataset")
    second = copied_study(study, tmp_path / "second_dataset", swap)
    output = tmp_path / "combined"
    result = nnunet.run_in_process("report", str(first), str(second), "-o", str(output))
    assert result.returncode == 0, result.stderr
    text = (output / "combined.md").read_text()
    assert "Combined report of 2 studies" in text and "(first_dataset)" in text and "(second_dataset)" in text
    assert "mean-then-rank" in text and "Holm-corrected over all pairs of that dataset" in text
    assert "The studies were run with the same settings." in text
    rows = pd.read_csv(output / "combined.csv")
    second_ranks = rows[rows["folder"].str.endswith("second_dataset")].set_index("architecture")["rank"]
    assert second_ranks[CUSTOM_NETWORK] == 1.0
    # challengeR: one file per endpoint, one task per dataset in it (each case and algorithm once per task)
    challenger = pd.read_csv(output / "challenger_Dice_small.csv", dtype={"case": str})
    assert set(challenger["task"]) == set(rows["dataset"]) and set(challenger["algorithm"]) == set(ARCHITECTURES)
    assert not challenger.duplicated(["task", "case", "algorithm"]).any()
    assert (output / "challenger_HD95_mean.csv").exists()
    for picture in ("ranks_blob.png", "significance.png"):
        assert (output / picture).stat().st_size > 5_000, picture
    assert "\\toprule" in (output / "results.tex").read_text()

    refused = nnunet.run_in_process("report", str(first), str(second), "-o", str(output))  # exists already
    assert refused.returncode == 2 and "pass --overwrite" in refused.stderr
    assert nnunet.run_in_process("report", str(first), str(second), "-o", str(output),
                                 "--overwrite").returncode == 0
    assert nnunet.run_in_process("report", str(first), str(second)).returncode == 2  # no -o
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    result = nnunet.run_in_process("report", str(first), str(unfinished), "-o", str(tmp_path / "c2"))
    assert result.returncode == 2 and "is not a finished study" in result.stderr
    other = copied_study(study, tmp_path / "other_networks", lambda t: t.replace({"UIUNet": "KiUNet"}, inplace=True))
    spec = json.loads((other / "study.json").read_text())
    spec["architectures"] = ["KiUNet", CUSTOM_NETWORK]
    spec["baseline"] = "KiUNet"
    (other / "study.json").write_text(json.dumps(spec))
    result = nnunet.run_in_process("report", str(first), str(other), "-o", str(tmp_path / "c3"))
    assert result.returncode == 2 and "compare different architectures" in result.stderr
    assert "['KiUNet', 'tests.integration.custom_net.BottleneckResUNet']" in result.stderr
    assert not (tmp_path / "c2").exists() and not (tmp_path / "c3").exists()


def test_a_dry_run_over_the_finished_pilot_study_estimates_from_its_trainings(study, nnunet):
    report = study["report"]
    before = (report / "state.json").read_text()
    result = nnunet.run_in_process(*compare_args(report, "--dry-run", "--calibration",
                                                 str(nnunet.root / "bottleneck_res_unet.json")))
    assert result.returncode == 0, result.stderr
    n = len(ARCHITECTURES)
    assert f"Trainings: {n} network(s) x 2 folds x 1 training seed(s) = {2 * n}, each 2 epoch(s) x 1 iterations" \
        in result.stdout
    assert f"Estimated cost: {2 * n} trainings x " in result.stdout
    assert f"(the trainings finished in {report}) = " in result.stdout and " hours of CPU" in result.stdout
    assert (report / "state.json").read_text() == before
