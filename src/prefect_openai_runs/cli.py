"""The ``prefect-openai-runs`` command line.

Subcommands:
    emulator: serve the runs API emulator in the foreground, logging each request on one line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

Command = Callable[[argparse.Namespace], int]


def _emulator(args: argparse.Namespace) -> int:
    from .testing import _cli

    return _cli.run(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subparser per command (each sets ``command`` to its function)."""
    parser = argparse.ArgumentParser(prog="prefect-openai-runs", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(title="commands", dest="command_name", required=True)

    emulator = commands.add_parser(
        "emulator",
        help="serve the OpenAI runs API emulator in the foreground",
        description="Serve the OpenAI Assistants runs API emulator until interrupted, one log line per request.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    from .testing._cli import add_arguments

    add_arguments(emulator)
    emulator.set_defaults(command=_emulator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``prefect-openai-runs`` console script.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The process exit code.
    """
    args = build_parser().parse_args(argv)
    command: Command = args.command
    return command(args)


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "build_parser",
    "main",
]
