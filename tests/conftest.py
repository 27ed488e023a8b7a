import os

import torch
from hypothesis import HealthCheck, settings

# The suite runs on 2 CPU cores, split between the pytest-xdist workers of `make test`: each worker and the
# programs it starts (DDP ranks, nnU-Net's CLI) get their share of threads (at least one), so that threads do not
# multiply on the cores.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = int(os.environ.get("NNUNET_ARCHS_TEST_THREADS", max(1, 2 // WORKERS)))
torch.set_num_threads(THREADS)
os.environ["OMP_NUM_THREADS"] = str(THREADS)

settings.register_profile("default", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("default")


def pytest_collection_modifyitems(items):
    """Tests marked ``slow(seconds)`` first, longest first (the order is otherwise kept): make test's workers take
    one module at a time, and the longest modules first lets them finish together, instead of one starting a
    five-minute study when the other has run dry. ``seconds`` is the module's serial time on the 2-core machine."""
    def expected_seconds(item) -> float:
        marker = item.get_closest_marker("slow")
        return marker.args[0] if marker else 0
    items.sort(key=expected_seconds, reverse=True)
