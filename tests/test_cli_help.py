"""Every command's ``--help`` has a line for every option and shows every default, the device flag is spelled as
nnU-Net spells it with ``--device`` beside it, and the README's command table names only commands and flags that
exist, and every command. Walks the real parser, so options added later are held to the same rule."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from nnunet_archs.cli.parser import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def commands() -> dict:
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(subparsers.choices)


def options(command: argparse.ArgumentParser):
    return [a for a in command._actions if not isinstance(a, argparse._HelpAction)]


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_option_has_help_and_shows_its_default(name):
    command = commands()[name]
    assert command.description, f"{name} --help says nothing about what the command does"
    formatter = command._get_formatter()
    for action in options(command):
        flag = "/".join(action.option_strings) or action.dest
        text = formatter._expand_help(action) if action.help else ""
        assert text.strip(), f"{name} {flag} has no help text"
        off_unless_given = action.nargs == 0 and action.default is False
        if not (action.required or off_unless_given):
            assert "default" in text.lower(), f"{name} {flag}: its help does not show its default: {text!r}"
    command.format_help()  # every help string formats (a stray % would raise here)


def test_help_shows_list_defaults_as_typed():
    help_text = " ".join(commands()["compare"].format_help().split())
    assert "(default: PlainConvUNet KiUNet UIUNet)" in help_text and "(default: 3d_fullres)" in help_text


@pytest.mark.parametrize("name", sorted(commands()))
def test_the_device_flag_is_nnunets_with_the_double_dash_alias(name):
    for action in options(commands()[name]):
        if action.dest == "device":
            assert set(action.option_strings) == {"-device", "--device"}, (name, action.option_strings)


def readme_command_rows():
    """Per row of the README's command table: the commands its first cell names, and per code span of the row the
    flags in it with the commands they belong to (the span's own command when it starts with one, else the row's)."""
    text = README.read_text()
    table = text[text.index("## Commands"):]
    table = table[:table.index("\n\n", table.index("| command |"))]
    parsers = commands()
    for row in table.splitlines()[2:]:
        first = row.strip("|").split("|", 1)[0]
        names = re.findall(r"`(?:nnunet-archs )?([a-z_-]+)", first)
        flags = []
        for span in re.findall(r"`([^`]+)`", row):
            words = span.replace("nnunet-archs ", "").split()
            owners = [words[0]] if words[0] in parsers else names
            flags += [(word.strip("[],"), owners) for word in words if word.strip("[],").startswith("-")]
        yield names, flags


def test_the_readme_command_table_names_every_command_and_only_flags_that_exist():
    parsers, listed = commands(), set()
    for names, flags in readme_command_rows():
        assert set(names) <= set(parsers), f"README names commands that do not exist: {set(names) - set(parsers)}"
        listed.update(names)
        for flag, owners in flags:
            known = {f for name in owners for action in options(parsers[name]) for f in action.option_strings}
            assert flag in known, f"README's row for {names}: {flag} is not an option of {owners}"
    assert listed == set(parsers), f"commands missing from README's table: {set(parsers) - listed}"
