"""The ``mmfuse`` command (also ``python -m mmfuse``).

Each subcommand is a function ``_cmd_<name>(args) -> int`` registered in
:func:`build_parser`; :func:`main` parses, dispatches and returns the exit
code (0 success, 1 a failure the command reports, 2 bad usage).
"""

import argparse
import json
import math
import os
import sys
import warnings
from contextlib import nullcontext
from importlib.util import find_spec
from pathlib import Path

import mmfuse
from mmfuse.utils._dask import on_dask_cluster
from mmfuse.utils._optional import EXTRAS


def _cmd_info(args: argparse.Namespace) -> int:
    """Print the version and which optional extras are installed."""
    print(f"mmfuse {mmfuse.__version__}")
    for extra, modules in EXTRAS.items():
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


def _failed(record: dict) -> bool:
    """Whether the strategy of a table row failed (its ``error`` is a text)."""
    return isinstance(record["error"], str)


def _metrics(records: list[dict]) -> list[str]:
    return [key[5:] for key in records[0] if key.startswith("mean_")]


def _format_table(records: list[dict]) -> str:
    """Format the ranked table: mean ± std of each score, fit time."""
    metrics = _metrics(records)
    header = ["rank", "strategy", "family", *metrics, "fit s/fold"]
    rows = [
        [
            str(record["rank"]),
            record["strategy"],
            record["family"],
            *(
                "failed"
                if _failed(record)
                else f"{record[f'mean_{m}']:.4f} ± {record[f'std_{m}']:.4f}"
                for m in metrics
            ),
            "" if _failed(record) else f"{record['fit_time']:.2f}",
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
    """Write a bar chart of the first score with its std as error bars.

    The bars start at 0, so their lengths compare as the scores do; each
    bar is labelled with its value, a failed strategy with "failed".
    """
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
    metric = _metrics(records)[0]
    ordered = records[::-1]
    # A failed strategy, or a score that is not finite (nan, -inf), has no bar.
    drawn = [
        (i, r)
        for i, r in enumerate(ordered)
        if not _failed(r) and math.isfinite(r[f"mean_{metric}"])
    ]
    means = [r[f"mean_{metric}"] for _, r in drawn]
    stds = [
        r[f"std_{metric}"] if math.isfinite(r[f"std_{metric}"]) else 0.0
        for _, r in drawn
    ]
    families = sorted({r["family"] for _, r in drawn})
    colours = dict(zip(families, plt.get_cmap("tab10").colors, strict=False))
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(records) + 1.3))
    ax.barh(
        [i for i, _ in drawn],
        means,
        xerr=stds,
        color=[colours[r["family"]] for _, r in drawn],
        capsize=3,
    )
    ax.set_yticks(range(len(ordered)), [r["strategy"] for r in ordered])
    ends = [m + s if m >= 0 else m - s for m, s in zip(means, stds, strict=True)]
    low, high = min([0.0, *ends]), max([0.0, *ends])
    span = high - low or 1.0
    ax.set_xlim(low - 0.02 * span, high + 0.14 * span)
    for (i, _), end, mean in zip(drawn, ends, means, strict=True):
        ax.text(max(end, 0.0), i, f" {mean:.4f}", va="center", fontsize="small")
    shown = {i for i, _ in drawn}
    for i, record in enumerate(ordered):
        if i not in shown:
            label = "failed" if _failed(record) else f"{record[f'mean_{metric}']}"
            ax.text(0.0, i, f" {label}", va="center", fontsize="small")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"{metric}: mean ± std over folds (bars start at 0)")
    ax.set_title(title)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[f]) for f in families]
    ax.legend(
        handles,
        families,
        title="family",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize="small",
    )
    if not Path(path).suffix:  # what matplotlib would do, said
        path = f"{path}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"plot written to {path}")


def _json_safe(records: list[dict]) -> list[dict]:
    """Return the records with NaN and infinities as None (JSON has neither)."""
    return [
        {
            k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in r.items()
        }
        for r in records
    ]


def _report(table, args: argparse.Namespace, title: str) -> int:
    """Print the ranked table and its failures, then write the JSON and plot.

    Returns 1 when every strategy failed, else 0.
    """
    records = _records(table)
    print(_format_table(records))
    failed = [r for r in records if _failed(r)]
    if failed:
        print("\nfailed (NaN scores, ranked last):")
        for record in failed:
            print(f"  {record['strategy']}: {record['error']}")
    try:
        if getattr(args, "json", None):
            Path(args.json).write_text(json.dumps(_json_safe(records), indent=2) + "\n")
            print(f"table written to {args.json}")
        if args.plot:
            _plot(records, args.plot, title)
    except OSError as exc:
        print(f"mmfuse {args.command}: error: {exc}", file=sys.stderr)
        return 1
    if len(failed) == len(records):
        print(f"mmfuse {args.command}: error: every strategy failed.", file=sys.stderr)
        return 1
    return 0


def _strategies(text: str | None):
    """Return the ``--strategies`` option as ``compare_fusion`` takes it."""
    if text is None:
        return "default"
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise ValueError(
            f"--strategies {text!r} has an empty item; separate the strategies "
            f"by single commas, e.g. single,early:kernel,stacking."
        )
    return items


def _check_output(path: str | None, option: str) -> None:
    """Check, before the run, that ``path`` can be written."""
    if not path:
        return
    target = Path(path)
    if target.is_dir() or path.endswith(("/", os.sep)):
        raise ValueError(
            f"{option} {path} names a directory; give a file name in it, e.g. "
            f"{target / ('compare.png' if option == '--plot' else 'table.json')}."
        )
    folder = target.parent
    if not folder.is_dir():
        raise ValueError(
            f"{option} {path}: the directory {folder} does not exist; create "
            f"it first, or give another path."
        )
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{option} {path}: the directory {folder} is not writable.")
    if option == "--plot" and target.suffix and find_spec("matplotlib"):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        formats = FigureCanvasAgg.get_supported_filetypes()
        if target.suffix[1:].lower() not in formats:
            raise ValueError(
                f"--plot {path}: matplotlib cannot write {target.suffix!r} "
                f"files; use one of {', '.join(sorted(formats))}."
            )


def _print_warnings(caught, skip=()) -> None:
    """Print each distinct warning once, on stderr, with how often it came."""
    counts: dict[str, int] = {}
    for warning in caught:
        if issubclass(warning.category, skip):
            continue
        lines = str(warning.message).strip().splitlines() or [""]
        text = f"{warning.category.__name__}: {lines[0]}"
        counts[text] = counts.get(text, 0) + 1
    for text, count in counts.items():
        times = f" ({count} times)" if count > 1 else ""
        print(f"warning{times}: {text}", file=sys.stderr)


def _n_folds(text: str) -> int:
    """Parse ``--cv``: an integer >= 2."""
    if not text.strip().lstrip("+-").isdigit() or int(text) < 2:
        raise argparse.ArgumentTypeError(
            f"must be an integer >= 2 (the number of folds), got {text!r}"
        )
    return int(text)


def _cmd_demo(args: argparse.Namespace) -> int:
    """Compare the default strategies on the bundled mfeat digits."""
    from sklearn.exceptions import FitFailedWarning

    from mmfuse.datasets import load_mfeat
    from mmfuse.fusion import compare_fusion

    bunch = load_mfeat()
    views = ", ".join(f"{v} ({w})" for v, w in bunch.blocks.items())
    print(
        f"mfeat: {bunch.data.shape[0]} handwritten digits, 10 classes, "
        f"6 modalities: {views}"
    )
    print(f"{args.cv}-fold stratified cross-validation (seed {args.seed})")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            _check_output(args.plot, "--plot")
            table = compare_fusion(
                bunch.data,
                bunch.target,
                bunch.blocks,
                strategies=_strategies(args.strategies),
                cv=args.cv,
                n_jobs=args.n_jobs,
                random_state=args.seed,
                progress=not args.quiet,
            )
        except ValueError as exc:
            print(f"mmfuse demo: error: {exc}", file=sys.stderr)
            return 1
        finally:
            _print_warnings(caught, skip=FitFailedWarning)
    return _report(table, args, "mfeat: fusion strategies")


def _parse_blocks(text: str | None):
    """Parse ``--blocks`` into what ``blocks`` takes in Python.

    ``3`` is three blocks of near-equal width, ``64,32`` widths, ``img=64,
    txt=32`` named widths, ``img,txt`` column-name prefixes and
    ``clinical=age+bmi,text=note`` named lists of columns.
    """
    if text is None:
        return "auto"
    examples = (
        "e.g. 3 (three blocks), 64,32 (widths), img=64,txt=32, img,txt "
        "(prefixes) or clinical=age+bmi,text=note (columns)"
    )
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise ValueError(
            f"--blocks {text!r} has an empty item; separate the modalities by "
            f"single commas ({examples})."
        )
    named = ["=" in item for item in items]
    numbers = [item.isdigit() for item in items]
    if any(named) and not all(named) or any(numbers) and not all(numbers):
        raise ValueError(
            f"--blocks {text!r} mixes forms; give all items in one form ({examples})."
        )
    if all(numbers):
        return int(items[0]) if len(items) == 1 else [int(item) for item in items]
    names = [item.partition("=")[0].strip() for item in items]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"--blocks {text!r} names {repeated} more than once; give each "
            f"modality once."
        )
    if not all(named):
        return items
    specs = {}
    for item, name in zip(items, names, strict=True):
        specs[name] = item.partition("=")[2].strip()
        if not name or not specs[name]:
            raise ValueError(
                f"--blocks item {item!r} must be NAME=WIDTH (e.g. image=64) or "
                f"NAME=COLUMN+COLUMN (e.g. clinical=age+bmi)."
            )
    widths = [spec.isdigit() for spec in specs.values()]
    if all(widths):
        return {name: int(spec) for name, spec in specs.items()}
    if any(widths):
        raise ValueError(
            f"--blocks {text!r} mixes widths and column names; give every "
            f"modality a width (img=64,txt=32) or its columns "
            f"(clinical=age+bmi,text=note)."
        )
    return {
        name: [column.strip() for column in spec.split("+")]
        for name, spec in specs.items()
    }


def _separator_hint(path: Path, sep: str) -> str:
    """Suggest ``--sep`` when the CSV's first line splits better on another one."""
    with open(path, encoding="utf-8", errors="replace") as file:
        header = file.readline()
    counts = {other: header.count(other) for other in (";", "\t", "|", ",")}
    best = max(counts, key=counts.get)
    if best == sep or counts[best] <= header.count(sep):
        return ""
    return f" Its first line looks separated by {best!r}: pass --sep {best!r}."


def _read_frame(path: Path, sep: str = ","):
    """Read a CSV or Parquet file into a DataFrame, with errors naming it."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise ValueError(
            "reading CSV or Parquet needs pandas: pip install 'mmfuse[pandas]'."
        ) from exc
    try:
        csv = path.suffix.lower() == ".csv"
        frame = pd.read_csv(path, sep=sep) if csv else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty: no header, no rows.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ImportError) as exc:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        hint = _separator_hint(path, sep) if csv else ""
        reason = lines[0].rstrip(".")
        raise ValueError(f"{path} could not be read: {reason}.{hint}") from None
    if csv and frame.shape[1] == 1:
        hint = _separator_hint(path, sep)
        if hint:
            raise ValueError(f"{path} reads as one column with --sep {sep!r}.{hint}")
    if len(frame) == 0:
        raise ValueError(f"{path} has no rows, only a header.")
    return frame


def _load_table(path: Path, target: str, groups: str | None = None, sep: str = ","):
    """Read ``(X, y, groups)`` from a CSV, Parquet or ``.npz`` file.

    The target and the groups are columns (arrays in a ``.npz``) named by
    ``--target`` and ``--groups``; the other columns are ``X``; ``sep``
    separates a CSV's fields.
    """
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a .csv, .parquet or .npz file.")
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    wanted = [target] + ([groups] if groups else [])
    if suffix == ".npz":
        import numpy as np

        with np.load(path, allow_pickle=False) as archive:
            arrays = dict(archive)
        missing = [name for name in ["X", *wanted] if name not in arrays]
        if missing:
            raise ValueError(
                f"{path} holds the arrays {sorted(arrays)}; a .npz needs the "
                f"features as 'X' and the arrays named by --target and "
                f"--groups ({missing} are not there)."
            )
        if arrays["X"].ndim != 2:
            raise ValueError(
                f"{path}: its 'X' has shape {arrays['X'].shape}; a .npz needs "
                f"'X' 2-D, a row a sample and a column a feature (one feature: "
                f"X.reshape(-1, 1))."
            )
        return arrays["X"], arrays[target], arrays[groups] if groups else None
    if suffix not in (".csv", ".parquet", ".pq"):
        raise ValueError(
            f"{path} is not a .csv, .parquet or .npz file; convert it to one of these."
        )
    frame = _read_frame(path, sep)
    for option, column in (("--target", target), ("--groups", groups)):
        if column is not None and column not in frame.columns:
            shown = ", ".join(map(str, frame.columns[:8]))
            more = len(frame.columns) - 8
            raise ValueError(
                f"{option} column {column!r} is not in {path}; its columns are "
                f"{shown}{f' and {more} more' if more > 0 else ''}."
            )
    if groups == target:
        raise ValueError(f"--groups and --target name the same column {target!r}.")
    return (
        frame.drop(columns=wanted),
        frame[target],
        frame[groups] if groups else None,
    )


def _describe(path: Path, X, blocks: dict, ignored: list, args) -> None:
    """Print what the command found: rows, modalities, ignored columns."""
    widths = ", ".join(f"{name} ({len(cols)})" for name, cols in blocks.items())
    print(f"{path.name}: {X.shape[0]} rows, target {args.target!r}")
    print(f"modalities (columns): {widths}")
    if ignored:
        shown = ", ".join(map(str, ignored[:10]))
        more = f", ... ({len(ignored)} in all)" if len(ignored) > 10 else ""
        print(f"ignored {len(ignored)} column(s) outside every modality: {shown}{more}")


def _cmd_compare(args: argparse.Namespace) -> int:
    """Compare fusion strategies on the user's data."""
    from sklearn.exceptions import FitFailedWarning

    from mmfuse.fusion import compare_fusion, infer_task
    from mmfuse.fusion._compare import check_data, check_n_splits

    path = Path(args.data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            _check_output(args.plot, "--plot")
            _check_output(args.json, "--json")
            spec = _parse_blocks(args.blocks)
            sep = "\t" if args.sep in ("\\t", "tab") else args.sep
            X, y, groups = _load_table(path, args.target, args.groups, sep)
            try:
                X, y, groups, blocks, ignored = check_data(X, y, spec, groups)
            except ValueError as exc:
                hint = (
                    " On the command line: --blocks 3 (three blocks of "
                    "near-equal width), --blocks 7,6 (widths) or --blocks "
                    "chem=7,color=6 (named widths)."
                    if args.blocks is None and "blocks='auto'" in str(exc)
                    else ""
                )
                raise ValueError(
                    f"{path} ({X.shape[1]} columns besides --target and "
                    f"--groups): {exc}{hint}"
                ) from None
            _describe(path, X, blocks, ignored, args)
            task = args.task or infer_task(y)
            how = "--task" if args.task else "inferred; --task to override"
            print(f"task: {task} ({how})")
            check_n_splits(args.cv, y, task, groups, name="--cv")
            grouped = f", grouped by {args.groups!r}" if args.groups else ""
            kind = "stratified " if task == "classification" else ""
            print(
                f"{args.cv}-fold {kind}cross-validation{grouped}, shuffled "
                f"(seed {args.seed})"
            )
            cluster = (
                nullcontext()
                if args.scheduler is None
                else on_dask_cluster(args.scheduler)
            )
            with cluster as client:
                if client is not None:
                    workers = len(client.scheduler_info()["workers"])
                    print(
                        f"on the Dask cluster at {args.scheduler} ({workers} workers)"
                    )
                table = compare_fusion(
                    X,
                    y,
                    blocks,
                    strategies=_strategies(args.strategies),
                    cv=args.cv,
                    scoring=args.scoring,
                    n_jobs=args.n_jobs,
                    random_state=args.seed,
                    task=task,
                    groups=groups,
                    progress=not args.quiet,
                )
        except (FileNotFoundError, ImportError, ValueError) as exc:
            print(f"mmfuse compare: error: {exc}", file=sys.stderr)
            return 1
        finally:
            _print_warnings(caught, skip=FitFailedWarning)
    return _report(table, args, f"{path.name}: fusion strategies")


def _add_run_options(parser: argparse.ArgumentParser, *, n_jobs, plot) -> None:
    """Options shared by ``demo`` and ``compare``."""
    parser.add_argument(
        "--strategies",
        metavar="LIST",
        help="comma-separated strategy or family names (default: all the "
        "default strategies), e.g. single,early:kernel,stacking",
    )
    parser.add_argument(
        "--cv",
        type=_n_folds,
        default=5,
        metavar="K",
        help="number of folds, at least 2 (default 5)",
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
        "--sep",
        default=",",
        metavar="CHAR",
        help="the field separator of a CSV (default ','), e.g. ';' or tab",
    )
    compare.add_argument(
        "--blocks",
        metavar="SPEC",
        help="modalities, as blocks= in Python: a number of blocks '3', "
        "widths '64,32', named widths 'img=64,txt=32', name prefixes "
        "'img,txt' or named columns 'clinical=age+bmi,text=note' (default: "
        "from '<modality>__' column prefixes); columns "
        "outside every block are ignored, and listed",
    )
    compare.add_argument(
        "--groups",
        metavar="COL",
        help="a column of group labels (patient, session, subject): no group "
        "is on both sides of a fold (nor of a stack's inner folds); the column is "
        "not a feature",
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
    compare.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the fits on the Dask cluster whose scheduler is at ADDRESS "
        "(e.g. tcp://10.0.0.1:8786), through joblib's Dask backend; needs "
        "pip install 'mmfuse[dask]'",
    )
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
