import pytest

from nnunet_archs.contract.cases import plans_cases, random_cases
from nnunet_archs.real_plans import PlansRecord

CLASS_KEYWORDS = ["conv_op", "norm_op", "dropout_op", "nonlin"]


def tiny_record(dim: int) -> PlansRecord:
    """A plans entry shaped like nnU-Net's (anisotropic first stride in 3D) with small widths."""
    strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]] if dim == 3 else [[1, 1], [2, 2], [2, 2], [2, 2]]
    kernels = [[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]] if dim == 3 else [[3, 3]] * 4
    arch_kwargs = dict(n_stages=4, features_per_stage=[8, 16, 32, 32], conv_op=f"torch.nn.modules.conv.Conv{dim}d",
                       kernel_sizes=kernels, strides=strides, n_conv_per_stage=[2] * 4, n_conv_per_stage_decoder=[2] * 3,
                       conv_bias=True, norm_op=f"torch.nn.modules.instancenorm.InstanceNorm{dim}d",
                       norm_op_kwargs={"eps": 1e-5, "affine": True}, dropout_op=None, dropout_op_kwargs=None,
                       nonlin="torch.nn.LeakyReLU", nonlin_kwargs={"inplace": True})
    return PlansRecord(id=f"tiny {dim}D", configuration=f"{dim}d", patch_size=[16] * dim, batch_size=2,
                       num_input_channels=1, num_classes=3,
                       network_class_name="dynamic_network_architectures.architectures.unet.PlainConvUNet",
                       arch_kwargs=arch_kwargs, kw_requires_import=CLASS_KEYWORDS)


TINY_RECORDS = [tiny_record(2), tiny_record(3)]


@pytest.fixture(scope="session")
def tiny_cases():
    """Two small nnU-Net-shaped configurations and a random one: what the contract tests check on."""
    return plans_cases(TINY_RECORDS) + random_cases(1)
