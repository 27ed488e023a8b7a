"""Measurement, usable without a study: the metric records (``metrics``), surface and object metrics, failures, and
``evaluate_folder`` over a folder of predictions into tidy tables (``tables``)."""
