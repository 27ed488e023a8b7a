"""``python -m nnunet_archs.cli``: the console script without its wrapper (BENCHMARKS.md's GPU commands)."""
from nnunet_archs.cli.dispatch import main

raise SystemExit(main())
