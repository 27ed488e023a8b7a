import os

import torch
from hypothesis import HealthCheck, settings

# The suite runs on 2 CPU cores; one thread per process keeps the DDP and CLI subprocesses from oversubscribing.
torch.set_num_threads(int(os.environ.get("NNUNET_ARCHS_TEST_THREADS", "2")))

settings.register_profile("default", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("default")
