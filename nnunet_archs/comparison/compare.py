"""``nnunet-archs compare``: train every architecture on the same dataset with the same budget and GPU memory
target, through stock nnU-Net programs, and report Dice next to the cost columns of ``profile``.

Each architecture is planned by its own planner at the same ``-gpu_memory_target`` (nnU-Net's for the U-Nets,
ours for KiU-Net and UIU-Net), preprocessed once per distinct preprocessed-data identifier, trained with
``nnUNetv2_train`` (a budget trainer, or a seed trainer for the minimal variants), evaluated on the dataset's
labelled test set (``imagesTs``/``labelsTs``) with ``nnUNetv2_predict`` and ``nnUNetv2_evaluate_folder``, or
else on the fold's validation split as nnU-Net's own final validation does. Every command is run as a
subprocess and written to ``commands.sh``; finished steps are recorded in ``state.json`` and skipped when the
comparison is resumed. nnU-Net is imported only inside functions: it reads its folder variables at import,
and ``demo`` sets them first.
"""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Recipe:
    """How one architecture is planned and trained in a comparison."""

    planner: str
    trainer: str


RECIPES: Dict[str, Recipe] = {
    # every net planned on the same memory budget, the ResEnc presets' way (no 5 % batch cap)
    "PlainConvUNet": Recipe("nnUNetPlannerPlainConvUNetM", "nnUNetTrainerBudget"),
    "ResEncUNet": Recipe("nnUNetPlannerResEncM", "nnUNetTrainerBudget"),
    "KiUNet": Recipe("nnUNetPlannerKiUNetM", "nnUNetTrainerBudget"),
    "KiUNet-maxpool": Recipe("nnUNetPlannerKiUNetM", "kiunet"),
    "KiUNet-minimal": Recipe("nnUNetPlannerKiUNetM", "kiunet_minimal"),
    "UIUNet": Recipe("nnUNetPlannerUIUNetM", "nnUNetTrainerBudget"),
    "UIUNet-minimal": Recipe("nnUNetPlannerUIUNetM", "uiunet_minimal"),
}


@dataclass
class Budget:
    epochs: Optional[int] = None
    iterations: Optional[int] = None
    val_iterations: Optional[int] = None
    minutes: Optional[float] = None
    mirroring: bool = False

    def __str__(self) -> str:
        parts = [f"{self.epochs} epochs" if self.epochs else "nnU-Net's epochs",
                 f"{self.iterations} iterations" if self.iterations else "nnU-Net's iterations"]
        if self.minutes:
            parts.append(f"at most {self.minutes:g} min")
        return " x ".join(parts[:2]) + (f", {parts[2]}" if self.minutes else "") + \
            (", mirroring" if self.mirroring else ", no mirroring")

    def environment(self) -> Dict[str, str]:
        env = {"NNUNET_ARCHS_NO_MIRRORING": "0" if self.mirroring else "1"}
        for variable, value in (("NNUNET_ARCHS_EPOCHS", self.epochs), ("NNUNET_ARCHS_ITERATIONS", self.iterations),
                                ("NNUNET_ARCHS_VAL_ITERATIONS", self.val_iterations),
                                ("NNUNET_ARCHS_MINUTES", self.minutes)):
            if value is not None:
                env[variable] = str(value)
        return env


class StepFailed(Exception):
    pass


class Comparison:
    def __init__(self, dataset_id: int, architectures: Sequence[str], configuration: str, budget: Budget,
                 gpu_memory_target: float, report: Path, device: str = "cpu", fold: str = "0",
                 processes: int = 1, log=print):
        self.dataset_id, self.architectures, self.configuration = dataset_id, list(architectures), configuration
        self.budget, self.gpu_memory_target, self.report = budget, gpu_memory_target, report
        self.device, self.fold, self.processes, self.log = device, fold, processes, log
        self.state_path = report / "state.json"
        self.state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {"done": {}}
        self.commands: List[str] = []
        from nnunet_archs.cli import ext_trainers_path
        self.env = {**os.environ, "nnUNet_extTrainer": ext_trainers_path(), "nnUNet_compile": "f"}
        self.plans_name = {a: f"nnUNetCompare_{a.replace('-', '_')}" for a in self.architectures}
        self.steps_total = 3 + 4 * len(self.architectures)
        self.steps_seen = 0

    # -- bookkeeping -----------------------------------------------------------------------------------------
    def step(self, key: str, description: str, action) -> dict:
        """Run ``action`` unless ``key`` finished in an earlier run; record its result and wall time."""
        self.steps_seen += 1
        prefix = f"[{self.steps_seen}/{self.steps_total}] {description}"
        if key in self.state["done"]:
            self.log(f"{prefix}: done earlier, skipped")
            return self.state["done"][key]
        self.log(f"{prefix} ...")
        start = time.perf_counter()
        result = action()
        result = result if isinstance(result, dict) else {}
        result["seconds"] = round(time.perf_counter() - start, 1)
        self.state["done"][key] = result
        self.state_path.write_text(json.dumps(self.state, indent=1))
        self.log(f"{prefix}: {result['seconds']:.0f} s")
        return result

    def run(self, *command: str, extra_env: Optional[Dict[str, str]] = None) -> str:
        env_prefix = " ".join(f"{k}={v}" for k, v in (extra_env or {}).items())
        self.commands.append((env_prefix + " " if env_prefix else "") + " ".join(command))
        with open(self.report / "commands.sh", "a") as script:
            script.write(self.commands[-1] + "\n")
        result = subprocess.run([str(BIN / command[0]), *command[1:]], env={**self.env, **(extra_env or {})},
                                capture_output=True, text=True)
        with open(self.report / "logs.txt", "a") as logs:
            logs.write(f"$ {self.commands[-1]}\n{result.stdout}\n{result.stderr}\n")
        if result.returncode != 0:
            raise StepFailed(f"{' '.join(command)} failed with exit status {result.returncode}; the last lines of "
                             f"its output:\n{(result.stdout + result.stderr)[-2000:]}\n(full log: "
                             f"{self.report / 'logs.txt'})")
        return result.stdout

    # -- the pipeline ----------------------------------------------------------------------------------------
    def preprocessed_folder(self) -> Path:
        from nnunetv2.utilities.dataset_name_id_conversion import convert_id_to_dataset_name
        return Path(os.environ["nnUNet_preprocessed"]) / convert_id_to_dataset_name(self.dataset_id)

    def raw_folder(self) -> Path:
        from nnunetv2.utilities.dataset_name_id_conversion import convert_id_to_dataset_name
        return Path(os.environ["nnUNet_raw"]) / convert_id_to_dataset_name(self.dataset_id)

    def results_folder(self, architecture: str) -> Path:
        return Path(os.environ["nnUNet_results"]) / self.raw_folder().name / \
            f"{RECIPES[architecture].trainer}__{self.plans_name[architecture]}__{self.configuration}"

    def run_all(self) -> List[dict]:
        d = str(self.dataset_id)
        self.step("fingerprint", "fingerprint", lambda: self.run(
            "nnUNetv2_extract_fingerprint", "-d", d, "-np", str(self.processes), "--verify_dataset_integrity"))
        for architecture in self.architectures:
            self.step(f"plan:{architecture}", f"plan {architecture}", lambda a=architecture: self.run(
                "nnunet-archs", "plan_experiment", "-d", d, "-pl", RECIPES[a].planner, "-gpu_memory_target",
                f"{self.gpu_memory_target:g}", "-overwrite_plans_name", self.plans_name[a], "--overwrite_existing_plans"))
        identifiers: Dict[str, str] = {}
        for architecture in self.architectures:
            plans = json.loads((self.preprocessed_folder() / f"{self.plans_name[architecture]}.json").read_text())
            identifiers.setdefault(plans["configurations"][self.configuration]["data_identifier"], architecture)
        self.step("preprocess", f"preprocess {len(identifiers)} distinct data set(s)", lambda: [self.run(
            "nnUNetv2_preprocess", "-d", d, "-plans_name", self.plans_name[a], "-c", self.configuration, "-np",
            str(self.processes)) for a in identifiers.values()])
        return [self.train_and_evaluate(architecture) for architecture in self.architectures]

    def profile_costs(self) -> dict:
        """``profile`` figures of every architecture at the first one's planned configuration."""
        from nnunet_archs.comparison.profile import run_profile, write_outputs
        from nnunet_archs.real_plans import PlansRecord
        first = self.plans_name[self.architectures[0]]
        record = PlansRecord.from_plans_file(
            json.loads((self.preprocessed_folder() / f"{first}.json").read_text()), first, self.configuration,
            json.loads((self.raw_folder() / "dataset.json").read_text()))

        def measure():
            result = run_profile(record, self.architectures, list(record.patch_size), record.batch_size, repeats=2,
                                 device=self.device)
            write_outputs(result, self.report)
            return {"rows": result.rows, "patch": result.patch, "batch": result.batch_size,
                    "machine": result.machine}
        return self.step("profile", f"profile all architectures at {first}'s configuration", measure)

    def train_and_evaluate(self, architecture: str) -> dict:
        d, recipe, plans = str(self.dataset_id), RECIPES[architecture], self.plans_name[architecture]
        train_env = {**self.budget.environment(), "nnUNet_n_proc_DA": "0" if self.device == "cpu" else
                     os.environ.get("nnUNet_n_proc_DA", "8"), "nnUNet_def_n_proc": str(self.processes)}
        training = self.step(f"train:{architecture}", f"train {architecture}", lambda: self.run(
            "nnUNetv2_train", d, self.configuration, self.fold, "-p", plans, "-tr", recipe.trainer, "-device",
            self.device, extra_env=train_env))
        raw = self.raw_folder()
        test_set = (raw / "imagesTs").is_dir() and (raw / "labelsTs").is_dir()
        prediction = self.report / "predictions" / architecture
        if test_set:
            predicting = self.step(f"predict:{architecture}", f"predict the test set with {architecture}", lambda: (
                shutil.rmtree(prediction, ignore_errors=True), self.run(
                    "nnUNetv2_predict", "-i", str(raw / "imagesTs"), "-o", str(prediction), "-d", d, "-c",
                    self.configuration, "-p", plans, "-tr", recipe.trainer, "-f", self.fold, "-npp", "0", "-nps", "0",
                    "-device", self.device, "--disable_progress_bar", extra_env={
                        "nnUNet_def_n_proc": str(self.processes)})))
            self.step(f"evaluate:{architecture}", f"evaluate {architecture}", lambda: self.run(
                "nnUNetv2_evaluate_folder", str(raw / "labelsTs"), str(prediction), "-djfile",
                str(prediction / "dataset.json"), "-pfile", str(prediction / "plans.json"), "-np",
                str(self.processes)))
            summary_path = prediction / "summary.json"
        else:
            predicting = {"seconds": 0.0}
            self.steps_seen += 2
            summary_path = self.results_folder(architecture) / f"fold_{self.fold}" / "validation" / "summary.json"
        summary = json.loads(summary_path.read_text())
        plans_entry = json.loads((self.preprocessed_folder() / f"{plans}.json").read_text())["configurations"][
            self.configuration]
        from nnunet_archs.training.trainers import TRAINERS  # imports nnU-Net, which reads its folders once
        trainer = TRAINERS.get(recipe.trainer)
        return {"architecture": architecture, "planner": recipe.planner, "trainer": recipe.trainer, "plans": plans,
                "patch": plans_entry["patch_size"],
                "batch": trainer.batch_size if trainer and trainer.batch_size else plans_entry["batch_size"],
                "evaluated_on": "test set" if test_set else f"fold {self.fold} validation",
                "dice": {label: summary["mean"][label]["Dice"] for label in summary["mean"]},
                "mean_dice": summary["foreground_mean"]["Dice"],
                "train_s": training["seconds"], "predict_s": predicting["seconds"]}


def label_names(raw_folder: Path) -> Dict[str, str]:
    labels = json.loads((raw_folder / "dataset.json").read_text())["labels"]
    return {str(v): k for k, v in labels.items() if not isinstance(v, list) and v != 0}


def write_report(report: Path, rows: List[dict], costs: Optional[dict], labels: Dict[str, str],
                 header: str) -> Path:
    """results.csv and results.md (Dice per class and mean, planned patch and batch, wall time, cost columns),
    and dice.png."""
    label_ids = [label for label in rows[0]["dice"]]
    fields = ["architecture", "planner", "trainer", "patch", "batch", "evaluated_on",
              *[f"dice_{labels.get(i, i)}" for i in label_ids], "mean_dice", "train_s", "predict_s"]
    cost_fields = ["params", "gflops", "estimate", "saved_bytes", "step_s"]
    with open(report / "results.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(fields + [f"cost_{c}" for c in cost_fields])
        for row in rows:
            cost = (costs or {}).get(row["architecture"], {})
            writer.writerow([row["architecture"], row["planner"], row["trainer"], "x".join(map(str, row["patch"])),
                             row["batch"], row["evaluated_on"], *[row["dice"][i] for i in label_ids],
                             row["mean_dice"], row["train_s"], row["predict_s"], *[cost.get(c) for c in cost_fields]])
    lines = [header, "", "| architecture | patch | batch | " + " | ".join(f"Dice {labels.get(i, i)}" for i in label_ids)
             + " | mean Dice | params (M) | GFLOPs | activations (MB) | step (s) | train (s) |",
             "|---" * (9 + len(label_ids)) + "|"]
    for row in rows:
        cost = (costs or {}).get(row["architecture"], {})
        figures = (f"{cost['params'] / 1e6:.2f} | {cost['gflops']:.1f} | {cost['saved_bytes'] / 2 ** 20:.0f} | "
                   f"{cost['step_s']:.2f}") if cost else "- | - | - | -"
        lines.append(f"| {row['architecture']} | {'x'.join(map(str, row['patch']))} | {row['batch']} | "
                     + " | ".join(_fmt(row["dice"][i]) for i in label_ids)
                     + f" | {_fmt(row['mean_dice'])} | {figures} | {row['train_s']:.0f} |")
    (report / "results.md").write_text("\n".join(lines) + "\n")
    _plot_dice(report / "dice.png", rows, label_ids, labels)
    return report / "results.md"


def _fmt(value: float) -> str:
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _plot_dice(path: Path, rows: List[dict], label_ids: List[str], labels: Dict[str, str]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    figure, axis = plt.subplots(figsize=(8, 4))
    width = 0.8 / (len(label_ids) + 1)
    for i, label in enumerate([*label_ids, "mean"]):
        values = [row["mean_dice"] if label == "mean" else row["dice"][label] for row in rows]
        axis.bar(np.arange(len(rows)) + i * width, values, width, label=labels.get(label, label))
    axis.set_xticks(np.arange(len(rows)) + 0.4 - width / 2, [row["architecture"] for row in rows])
    axis.set_ylabel("Dice")
    axis.set_ylim(0, 1)
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
