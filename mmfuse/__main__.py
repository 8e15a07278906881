"""The ``mmfuse`` command (also ``python -m mmfuse``).

Each subcommand is a function ``_cmd_<name>(args) -> int`` registered in
:func:`build_parser`; :func:`main` parses, dispatches and returns the exit
code (0 success, 1 a failure the command reports, 2 bad usage).
"""

import argparse
import sys
from importlib.util import find_spec

import mmfuse

_EXTRAS = {
    "deep": ("torch", "skorch"),
    "plot": ("matplotlib",),
    "pandas": ("pandas",),
    "progress": ("tqdm",),
}


def _cmd_info(args: argparse.Namespace) -> int:
    """Print the version and which optional extras are installed."""
    print(f"mmfuse {mmfuse.__version__}")
    for extra, modules in _EXTRAS.items():
        missing = [m for m in modules if find_spec(m) is None]
        state = "installed" if not missing else f"missing {', '.join(missing)}"
        print(f"  {extra:<9} {state}")
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    """List the bundled data sets with their modalities."""
    from mmfuse.datasets import load_mfeat, load_nutrimouse

    for name, loader in (("mfeat", load_mfeat), ("nutrimouse", load_nutrimouse)):
        bunch = loader()
        views = ", ".join(f"{v} ({w})" for v, w in bunch.blocks.items())
        print(f"{name}: {bunch.data.shape[0]} rows; {views}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with one subparser per subcommand."""
    parser = argparse.ArgumentParser(
        prog="mmfuse",
        description="Multimodal fusion with scikit-learn estimators.",
    )
    parser.add_argument(
        "--version", action="version", version=f"mmfuse {mmfuse.__version__}"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "info", help="show the version and the optional extras installed"
    ).set_defaults(func=_cmd_info)
    commands.add_parser(
        "datasets", help="list the bundled data sets and their modalities"
    ).set_defaults(func=_cmd_datasets)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``mmfuse`` command.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    code : int
        The exit status.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
