"""nnU-Net trainers (see ``trainers``)."""
