import os

import torch
from hypothesis import HealthCheck, settings

# The suite runs on 2 CPU cores, split between the pytest-xdist workers of `make test`: each worker and the
# programs it starts (DDP ranks, nnU-Net's CLI) get their share of threads, so that nothing oversubscribes.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = int(os.environ.get("NNUNET_ARCHS_TEST_THREADS", max(1, 2 // WORKERS)))
torch.set_num_threads(THREADS)
os.environ["OMP_NUM_THREADS"] = str(THREADS)

settings.register_profile("default", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("default")


def pytest_collection_modifyitems(items):
    """Tests marked ``slow`` first (the order is otherwise kept): the workers then share out the long tests at
    the start and finish together, instead of one starting a five-minute study when the other has run dry."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
