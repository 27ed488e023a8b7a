"""The argument parser of ``nnunet-archs``: one sub-command per task, declared by its group's module, each
parsed to a namespace whose ``run`` is the function that carries it out."""
from __future__ import annotations

import argparse

from nnunet_archs.cli import network_commands, plan_commands, study_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnunet-archs", description="KiU-Net and UIU-Net for nnU-Net v2.")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in (plan_commands, network_commands, study_commands):
        group.add_commands(commands)
    return parser
