"""Rendering: markdown, CSV, LaTeX and figures of one study (``study_report``) and of several (``combined_report``),
from results objects (``results``); nothing here reads a study's files or computes a statistic."""
