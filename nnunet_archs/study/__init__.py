"""``nnunet-archs compare`` as a study: what it is (``spec``), the checks before it runs (``preflight``), its report
folder (``folder``), a graph of stock nnU-Net and nnunet-archs commands (``jobs``), run by interchangeable executors
(``executors``, ``scheduler``, ``runner``), and its report from what the jobs left (``records``, ``results``);
``driver`` ties them together. Measurement, statistics and rendering live in ``evaluation``, ``analysis`` and
``reporting``, which the study drives.

This package's ``__init__`` and ``runner`` import nothing heavy: the runner is what executors unpickle in every
job process.
"""
