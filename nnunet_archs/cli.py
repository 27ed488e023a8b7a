"""The ``nnunet-archs`` command line."""
from __future__ import annotations

import argparse
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="nnunet-archs", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    showcase = commands.add_parser("showcase", help="DynamicKiUNet next to PlainConvUNet on real nnU-Net "
                                                    "configurations: parameters, output shapes, step time")
    showcase.add_argument("--batch-size", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "showcase":
        if args.batch_size < 1:
            parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
        from nnunet_archs.showcase import run_showcase
        run_showcase(batch_size=args.batch_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
