"""The argument parser of ``nnunet-archs``: one sub-command per task, declared by its group's module, each
parsed to a namespace whose ``run`` is the function that carries it out. Every command's ``--help`` shows what it
does and every option's default (tests/integration/test_cli_help.py walks this parser to keep it so)."""
from __future__ import annotations

import argparse
from nnunet_archs.cli import network_commands, plan_commands, study_commands


def default_text(value) -> str:
    """A default as a user types it: lists space-separated, paths and numbers as written."""
    if isinstance(value, (list, tuple)):
        return " ".join(default_text(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def states_its_default(action: argparse.Action) -> bool:
    """Whether an option's help needs no default appended: it says it itself, the option is required, or it is
    a switch that is off unless given."""
    return ("default" in (action.help or "").lower() or action.required or action.default is argparse.SUPPRESS
            or (action.nargs == 0 and action.default is False))


class DefaultsFormatter(argparse.HelpFormatter):
    """argparse's help with ``(default: ...)`` after every option whose help does not state it; an option whose
    default is None must say in its help what None means (its help then contains "default")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if states_its_default(action) or action.default is None:
            return text
        return f"{text} (default: {default_text(action.default).replace('%', '%%')})"


class Commands(argparse._SubParsersAction):  # argparse's sub-command action, whose parsers get our formatter
    def add_parser(self, name, **kwargs):
        kwargs.setdefault("description", kwargs.get("help"))
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        return super().add_parser(name, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnunet-archs", description="KiU-Net and UIU-Net for nnU-Net v2.")
    commands = parser.add_subparsers(dest="command", required=True, action=Commands)
    for group in (plan_commands, network_commands, study_commands):
        group.add_commands(commands)
    return parser
