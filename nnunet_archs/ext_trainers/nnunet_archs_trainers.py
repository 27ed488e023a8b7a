# A thin shim for nnU-Net's trainer lookup: point nnUNet_extTrainer at this folder
# (`export nnUNet_extTrainer=$(nnunet-archs trainers-path)`). The classes live in the installed package; the
# module-level __getattr__ answers the seeded trainers' names (nnUNetTrainerBudget_seed<S>).
from nnunet_archs.training.trainers import *  # noqa: F401,F403
from nnunet_archs.training.trainers import __getattr__  # noqa: F401
