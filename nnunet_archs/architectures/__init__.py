"""Network architectures. Import paths are frozen into nnU-Net plans files: keep them stable."""
from nnunet_archs.architectures.kiunet import DynamicKiUNet
from nnunet_archs.architectures.uiunet import DynamicUIUNet3D

__all__ = ["DynamicKiUNet", "DynamicUIUNet3D"]
