"""``nnunet-archs compare`` as a study: what it is (``spec``), the checks before it runs (``preflight``), a graph
of stock nnU-Net and nnunet-archs commands (``jobs``), run by interchangeable executors (``executors``,
``scheduler``, ``runner``), per-case metrics (``metrics``), paired statistics (``statistics``) and a report that
only renders them (``report``); ``driver`` ties them together.

This package's ``__init__`` and ``runner`` import nothing heavy: the runner is what executors unpickle in every
job process.
"""
