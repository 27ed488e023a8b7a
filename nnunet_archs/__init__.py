"""nnunet-archs: KiU-Net and UIU-Net as first-class nnU-Net v2 architectures."""
__version__ = "0.1.0"
