"""The ``mmfuse`` command (also ``python -m mmfuse``).

Each subcommand is a function ``_cmd_<name>(args) -> int`` registered in
:func:`build_parser`; :func:`main` parses, dispatches and returns the exit
code (0 success, 1 a failure the command reports, 2 bad usage).
"""

import argparse
import json
import sys
from importlib.util import find_spec
from pathlib import Path

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


def _records(table) -> list[dict]:
    """Return the rows of a ``compare_fusion`` table, whatever its type."""
    return table.to_dict("records") if hasattr(table, "to_dict") else list(table)


def _format_table(records: list[dict]) -> str:
    """Format the ranked table: mean ± std of each score, fit time."""
    metrics = [key[5:] for key in records[0] if key.startswith("mean_")]
    header = ["rank", "strategy", "family", *metrics, "fit s/fold"]
    rows = [
        [
            str(record["rank"]),
            record["strategy"],
            record["family"],
            *(f"{record[f'mean_{m}']:.4f} ± {record[f'std_{m}']:.4f}" for m in metrics),
            f"{record['fit_time']:.2f}",
        ]
        for record in records
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.rjust(w) if i in (0, len(header) - 1) else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in [header, *rows]
    )


def _plot(records: list[dict], path: str, title: str) -> None:
    """Write a bar chart of the first score with its std as error bars."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            "note: matplotlib is not installed, so no plot was written "
            "(pip install 'mmfuse[plot]')."
        )
        return
    metric = next(key[5:] for key in records[0] if key.startswith("mean_"))
    ordered = records[::-1]
    families = sorted({r["family"] for r in records})
    colours = dict(zip(families, plt.get_cmap("tab10").colors, strict=False))
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(records) + 1.2))
    ax.barh(
        [r["strategy"] for r in ordered],
        [r[f"mean_{metric}"] for r in ordered],
        xerr=[r[f"std_{metric}"] for r in ordered],
        color=[colours[r["family"]] for r in ordered],
        capsize=3,
    )
    low = min(r[f"mean_{metric}"] - r[f"std_{metric}"] for r in records)
    high = max(r[f"mean_{metric}"] + r[f"std_{metric}"] for r in records)
    margin = 0.05 * (high - low) or 0.01
    ax.set_xlim(low - margin, high + margin)
    ax.set_xlabel(f"{metric} (mean ± std over folds)")
    ax.set_title(title)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[f]) for f in families]
    ax.legend(handles, families, loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"plot written to {path}")


def _report(table, args: argparse.Namespace, title: str) -> int:
    """Print the ranked table, then write the JSON and the plot if asked."""
    records = _records(table)
    print(_format_table(records))
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps(records, indent=2) + "\n")
        print(f"table written to {args.json}")
    if args.plot:
        _plot(records, args.plot, title)
    return 0


def _strategies(text: str | None):
    return "default" if text is None else [s.strip() for s in text.split(",") if s]


def _cmd_demo(args: argparse.Namespace) -> int:
    """Compare the default strategies on the bundled mfeat digits."""
    from mmfuse.datasets import load_mfeat
    from mmfuse.fusion import compare_fusion

    bunch = load_mfeat()
    strategies = _strategies(args.strategies)
    views = ", ".join(f"{v} ({w})" for v, w in bunch.blocks.items())
    print(
        f"mfeat: {bunch.data.shape[0]} handwritten digits, 10 classes, "
        f"6 modalities: {views}"
    )
    print(f"{args.cv}-fold stratified cross-validation (seed {args.seed})")
    table = compare_fusion(
        bunch.data,
        bunch.target,
        bunch.blocks,
        strategies=strategies,
        cv=args.cv,
        n_jobs=args.n_jobs,
        random_state=args.seed,
        progress=not args.quiet,
    )
    return _report(table, args, "mfeat: fusion strategies")


def _parse_blocks(text: str | None):
    """``a,b`` prefixes; ``76,216`` widths; ``a=76,b=216`` named widths."""
    if text is None:
        return "auto"
    items = [item.strip() for item in text.split(",") if item.strip()]
    if all("=" in item for item in items):
        named = {}
        for item in items:
            name, _, width = item.partition("=")
            if not width.strip().isdigit():
                raise ValueError(
                    f"--blocks item {item!r} must be NAME=WIDTH with an integer "
                    f"width, e.g. image=64."
                )
            named[name.strip()] = int(width)
        return named
    if all(item.isdigit() for item in items):
        return [int(item) for item in items]
    return items


def _load_table(path: Path, target: str):
    """Read ``(X, y)`` from a CSV, Parquet or ``.npz`` file."""
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        import numpy as np

        with np.load(path, allow_pickle=False) as archive:
            arrays = dict(archive)
        if target not in arrays or "X" not in arrays:
            raise ValueError(
                f"{path} holds the arrays {sorted(arrays)}; a .npz needs the "
                f"features as 'X' and the target named by --target "
                f"(got {target!r})."
            )
        return arrays["X"], arrays[target]
    if suffix not in (".csv", ".parquet", ".pq"):
        raise ValueError(
            f"{path} is not a .csv, .parquet or .npz file; convert it to one of these."
        )
    try:
        import pandas as pd
    except ImportError as exc:
        raise ValueError(
            "reading CSV or Parquet needs pandas: pip install 'mmfuse[pandas]'."
        ) from exc
    frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    if target not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:8]))
        raise ValueError(
            f"target column {target!r} is not in {path}; its columns are "
            f"{shown}{', ...' if len(frame.columns) > 8 else ''}."
        )
    return frame.drop(columns=[target]), frame[target].to_numpy()


def _cmd_compare(args: argparse.Namespace) -> int:
    """Compare fusion strategies on the user's data."""
    from mmfuse.fusion import compare_fusion

    try:
        X, y = _load_table(Path(args.data), args.target)
        table = compare_fusion(
            X,
            y,
            _parse_blocks(args.blocks),
            strategies=_strategies(args.strategies),
            cv=args.cv,
            scoring=args.scoring,
            n_jobs=args.n_jobs,
            random_state=args.seed,
            task=args.task,
            progress=not args.quiet,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"mmfuse compare: error: {exc}", file=sys.stderr)
        return 1
    return _report(table, args, f"{Path(args.data).name}: fusion strategies")


def _add_run_options(parser: argparse.ArgumentParser, *, n_jobs, plot) -> None:
    """Options shared by ``demo`` and ``compare``."""
    parser.add_argument(
        "--strategies",
        metavar="LIST",
        help="comma-separated strategy or family names (default: all the "
        "default strategies), e.g. single,early:kernel,stacking",
    )
    parser.add_argument(
        "--cv", type=int, default=5, metavar="K", help="number of folds (default 5)"
    )
    parser.add_argument(
        "--n-jobs",
        type=int,
        default=n_jobs,
        metavar="N",
        help=f"parallel fits, -1 for all cores (default {n_jobs})",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the folds (default 0)"
    )
    parser.add_argument(
        "--plot",
        default=plot,
        metavar="FILE",
        help="write a bar chart here"
        + (f" (default {plot}; '' for none)" if plot else ""),
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


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
    demo = commands.add_parser(
        "demo",
        help="compare the fusion strategies on the bundled mfeat digits",
        description="Cross-validate the default fusion strategies on the "
        "bundled mfeat data (2000 digits, 6 modalities), print a ranked table "
        "and write a bar chart.",
    )
    _add_run_options(demo, n_jobs=-1, plot="mmfuse_demo.png")
    demo.set_defaults(func=_cmd_demo)
    compare = commands.add_parser(
        "compare",
        help="compare fusion strategies on your CSV, Parquet or .npz data",
        description="Cross-validate fusion strategies on a table whose "
        "columns are named '<modality>__<feature>' (or with --blocks), print "
        "a ranked table, and optionally write it as JSON and a bar chart.",
    )
    compare.add_argument("data", help="a .csv, .parquet or .npz file (X and y)")
    compare.add_argument(
        "--target", required=True, metavar="COL", help="the target column (or array)"
    )
    compare.add_argument(
        "--blocks",
        metavar="SPEC",
        help="modalities: name prefixes 'img,txt', widths '64,32' or "
        "'img=64,txt=32' (default: from '<modality>__' column prefixes)",
    )
    compare.add_argument(
        "--scoring", help="a scikit-learn scorer name (default accuracy or r2)"
    )
    compare.add_argument(
        "--task",
        choices=["classification", "regression"],
        help="default: inferred from the target",
    )
    compare.add_argument("--json", metavar="FILE", help="write the table as JSON")
    _add_run_options(compare, n_jobs=None, plot=None)
    compare.set_defaults(func=_cmd_compare)
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
