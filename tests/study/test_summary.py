"""The summary a study prints before it starts, from the job graph (no training), and the refusal of nnU-Net's full
schedule on a CPU."""
from __future__ import annotations

import pytest

from nnunet_archs.errors import UserError
from nnunet_archs.study.jobs import build_jobs
from nnunet_archs.study.spec import Budget
from nnunet_archs.study.summary import Estimate, check_cpu_schedule, summary_lines
from tests.study.test_jobs import PLANNERS, layout, spec


def summary(tmp_path, study, estimate=Estimate(None), **keywords) -> str:
    where = layout(tmp_path, True)
    return "\n".join(summary_lines(study, where, build_jobs(study, where, PLANNERS), "-device", "local", estimate,
                                   **keywords))


def test_the_summary_gives_trainings_schedule_device_jobs_and_gpu_hours(tmp_path):
    study = spec(architectures=["PlainConvUNet", "KiUNet", "UIUNet"], training_seeds=[0, 1], device="cuda",
                 budget=Budget(epochs=300))
    text = summary(tmp_path, study, Estimate(2.5, "--hours-per-training"), max_parallel=4)
    assert "Study of Dataset501_X, configuration 3d_fullres: 3 networks: KiUNet and UIUNet each tested against the " \
           "baseline PlainConvUNet" in text
    assert "Trainings: 3 network(s) x 2 folds x 2 training seed(s) = 12, each 300 epoch(s) x 250 iterations " \
           "(nnU-Net's iterations), no mirroring" in text
    assert "Device: cuda (-device)" in text and "12 train" in text and "up to 4 at once" in text
    assert "Estimated cost: 12 trainings x 2.50 h (--hours-per-training) x 1 GPU(s) = 30.0 GPU-hours" in text


def test_one_network_measures_its_spread_and_compares_nothing(tmp_path):
    text = summary(tmp_path, spec(architectures=["PlainConvUNet"]))
    assert "1 network, PlainConvUNet: the study measures its spread over cases, folds and training seeds and " \
           "compares it with nothing" in text
    assert "Estimated cost: unknown until a training has finished here (compare estimates it from " \
           "--hours-per-training H" in text


def test_nnunets_full_schedule_on_a_cpu_is_refused_unless_confirmed(tmp_path):
    full = spec(budget=Budget())
    assert "each 1000 epoch(s) x 250 iterations (nnU-Net's full schedule)" in summary(tmp_path, full)
    with pytest.raises(UserError, match="full schedule on the CPU: each of the 4 trainings .* pass --yes"):
        check_cpu_schedule(full, 4, confirmed=False)
    assert "confirmed with --yes" in check_cpu_schedule(full, 4, confirmed=True)
    for shortened in (Budget(epochs=10), Budget(iterations=5), Budget(minutes=30)):
        assert check_cpu_schedule(spec(budget=shortened), 4, confirmed=False) is None
    assert check_cpu_schedule(spec(budget=Budget(), device="cuda"), 4, confirmed=False) is None
