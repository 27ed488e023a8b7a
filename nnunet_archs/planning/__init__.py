"""Experiment planners that size patch and batch for KiU-Net and UIU-Net (see ``planners``)."""
