"""Run one command: the one place where a user's error becomes one line on stderr and exit status 2."""
from __future__ import annotations

import sys
from typing import List, Optional

from nnunet_archs.cli.parser import build_parser
from nnunet_archs.errors import StudyIncomplete, UserError


def main(argv: Optional[List[str]] = None) -> int:
    """The ``nnunet-archs`` console script: 0 on success, 1 when a check failed or a study left jobs failed, 2
    on input the user can fix (argparse's own refusals exit with 2 as well)."""
    args = build_parser().parse_args(argv)
    try:
        status = args.run(args)
    except UserError as error:
        print(f"nnunet-archs {args.command}: error: {error}", file=sys.stderr)
        return 2
    except StudyIncomplete as error:
        print(f"nnunet-archs {args.command}: {error}", file=sys.stderr)
        return 1
    return status or 0
