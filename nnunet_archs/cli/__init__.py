"""The ``nnunet-archs`` command line: ``parser`` assembles the commands, ``dispatch.main`` runs one, and each
group of commands (``plan_commands``, ``network_commands``, ``study_commands``) declares its arguments and turns
them into one call of the layer below. Nothing outside this package imports it."""
from nnunet_archs.cli.dispatch import main

__all__ = ["main"]
