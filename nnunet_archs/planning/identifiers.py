"""The name of a plans file's preprocessed data, shared by the planners that write it and the study's jobs that
preprocess it (standard library only).

nnU-Net's default planner and its ResEnc presets store ``2d`` and ``3d_fullres`` data as ``nnUNetPlans_<config>``
whatever their plans are called, since their spacing, normalisation and transposition are the default planner's;
ours do the same, so every network of a study trains on one copy of the data. Other configurations (a cascade's
``3d_lowres``) depend on the plans and are stored per plans file.
"""
SHARED_DATA_CONFIGURATIONS = ("2d", "3d_fullres")


def data_identifier(plans_identifier: str, configuration: str) -> str:
    if configuration in SHARED_DATA_CONFIGURATIONS:
        return f"nnUNetPlans_{configuration}"
    return f"{plans_identifier}_{configuration}"
