"""Network architectures. Import paths are frozen into nnU-Net plans files: keep them stable."""
from nnunet_archs.architectures.kiunet import DynamicKiUNet

__all__ = ["DynamicKiUNet"]
