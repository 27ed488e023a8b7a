"""Analysis: pure functions from tidy per-case tables to small result objects (``statistics`` of one study,
``consensus`` across datasets, ``sizes`` of objects, ``costs`` as measured), with intervals and tests in modules of
their own. No file access; imports only ``evaluation`` (the metric records) below it."""
