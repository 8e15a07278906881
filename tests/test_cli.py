import http.server
import json
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine

import mmfuse
from mmfuse.__main__ import main
from mmfuse.datasets import load_mfeat

# Subprocesses import the mmfuse under test, not another installed copy.
ENV = {**os.environ, "PYTHONPATH": str(Path(mmfuse.__file__).parents[1])}


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory):
    bunch = load_mfeat(views=["kar", "zer"], as_frame=True)
    frame = bunch.frame.iloc[::5]
    path = tmp_path_factory.mktemp("data") / "digits.csv"
    frame.to_csv(path, index=False)
    return path


def _table_rows(out):
    return [line.split() for line in out.splitlines() if line[:4].strip().isdigit()]


def test_demo_prints_a_ranked_table_and_writes_a_plot(tmp_path, capsys):
    plot = tmp_path / "demo.png"
    code = main(
        [
            "demo",
            "--strategies",
            "single:mor,late:soft",
            "--cv",
            "2",
            "--n-jobs",
            "1",
            "--quiet",
            "--plot",
            str(plot),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "mfeat: 2000 handwritten digits" in out
    rows = _table_rows(out)
    assert [row[1] for row in rows] == ["late:soft", "single:mor"]
    assert float(rows[0][3]) > float(rows[1][3]) > 0.5
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_plot_paths_say_what_is_written(tmp_path, capsys):
    # A name without an extension was reported as such while matplotlib wrote
    # name.png; a name ending in "/" passed the check and failed after the run.
    args = ["demo", "--strategies", "single:mor", "--cv", "2", "--quiet"]
    assert main([*args, "--plot", str(tmp_path / "chart")]) == 0
    assert f"plot written to {tmp_path / 'chart'}.png" in capsys.readouterr().out
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"
    assert main([*args, "--plot", f"{tmp_path / 'nodir'}/"]) == 1
    captured = capsys.readouterr()
    assert "names a directory; give a file name in it" in captured.err
    assert "rank" not in captured.out  # refused before the run


def test_infinite_scores_are_null_in_json_and_unbarred_in_the_plot(data_dir, tmp_path):
    # -inf was written as -Infinity (not JSON), and the plot came out empty.
    frame = pd.read_csv(data_dir / "diabetes.csv")
    frame["progression"] *= 1e160  # squared errors overflow to inf
    frame.to_csv(tmp_path / "huge.csv", index=False)
    out_json, out_png = tmp_path / "t.json", tmp_path / "t.png"
    args = ["--target", "progression", "--strategies", "single:demo", "--cv", "2"]
    args += ["--scoring", "neg_mean_squared_error", "--quiet"]
    args += ["--json", str(out_json), "--plot", str(out_png)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the scorer's overflow
        assert main(["compare", str(tmp_path / "huge.csv"), *args]) == 0

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    records = json.loads(out_json.read_text(), parse_constant=refuse)
    assert records[0]["mean_neg_mean_squared_error"] is None
    assert out_png.read_bytes()[:4] == b"\x89PNG"


def test_compare_csv_writes_json(csv_file, tmp_path, capsys):
    out_json = tmp_path / "table.json"
    code = main(
        [
            "compare",
            str(csv_file),
            "--target",
            "digit",
            "--strategies",
            "single,stacking",
            "--cv",
            "2",
            "--quiet",
            "--json",
            str(out_json),
        ]
    )
    assert code == 0
    records = json.loads(out_json.read_text())
    assert {r["strategy"] for r in records} == {"single:kar", "single:zer", "stacking"}
    assert [r["rank"] for r in records] == [1, 2, 3]
    assert all(0.5 < r["mean_accuracy"] <= 1 for r in records)
    assert "stacking" in capsys.readouterr().out


def test_compare_npz_with_widths(tmp_path, capsys):
    X, y = load_mfeat(views=["kar", "mor"], return_X_y=True)
    path = tmp_path / "d.npz"
    np.savez(path, X=X[::5], label=y[::5])
    code = main(
        [
            "compare",
            str(path),
            "--target",
            "label",
            "--blocks",
            "kar=64,mor=6",
            "--strategies",
            "single",
            "--cv",
            "2",
            "--quiet",
        ]
    )
    assert code == 0
    rows = _table_rows(capsys.readouterr().out)
    assert [row[1] for row in rows] == ["single:kar", "single:mor"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """CSV files made from scikit-learn's bundled data sets."""
    folder = tmp_path_factory.mktemp("user_data")
    d = load_diabetes(scaled=False)
    columns = [f"demo__{c}" for c in ("age", "sex", "bmi", "bp")]
    columns += [f"serum__{c}" for c in d.feature_names[4:]]
    frame = pd.DataFrame(d.data, columns=columns)
    frame.insert(0, "patient", np.arange(len(frame)) % 40)
    frame["progression"] = d.target
    frame.to_csv(folder / "diabetes.csv", index=False)
    frame.to_csv(folder / "diabetes_semicolon.csv", index=False, sep=";")
    frame.drop(columns="patient").iloc[:0].to_csv(folder / "empty.csv", index=False)
    frame.loc[[3, 9], "progression"] = np.nan
    frame.to_csv(folder / "nan_target.csv", index=False)

    bc = load_breast_cancer()
    names = [
        "mean__" + c[5:]
        if c.startswith("mean ")
        else "error__" + c[:-6]
        if c.endswith(" error")
        else "worst__" + c[6:]
        for c in bc.feature_names
    ]
    frame = pd.DataFrame(bc.data, columns=[n.replace(" ", "_") for n in names])
    lacking = np.random.default_rng(0).choice(len(frame), 50, replace=False)
    frame.iloc[lacking, 10:20] = np.nan  # 50 rows lack the 'error' modality
    frame.insert(0, "id", [f"P{i:04d}" for i in range(len(frame))])
    frame["diagnosis"] = np.where(bc.target == 1, "benign", "malignant")
    frame.to_csv(folder / "breast.csv", index=False)

    iris = load_iris()
    frame = pd.DataFrame(
        iris.data,
        columns=["sepal__length", "sepal__width", "petal__length", "petal__width"],
    )
    frame["const__one"] = 1.0
    frame["species"] = iris.target
    frame.to_csv(folder / "iris_const.csv", index=False)
    frame["clin__side"] = np.where(np.arange(len(frame)) % 2, "right", "left")
    frame.to_csv(folder / "iris_text.csv", index=False)
    frame = frame.drop(columns="clin__side")
    codes = frame.drop(columns="const__one").assign(code=np.arange(150) % 15)
    codes.drop(columns="species").to_csv(folder / "codes.csv", index=False)
    frame.iloc[[5, 6], :5] = np.nan
    frame.to_csv(folder / "iris_empty_rows.csv", index=False)
    np.savez(folder / "one_column.npz", X=iris.data[:, 0], y=iris.target)
    return folder


def test_compare_csv_with_another_separator(data_dir, capsys):
    args = ["--target", "progression", "--strategies", "single", "--quiet"]
    path = str(data_dir / "diabetes_semicolon.csv")
    assert main(["compare", path, "--sep", ";", *args]) == 0
    semicolon = _table_rows(capsys.readouterr().out)
    assert main(["compare", str(data_dir / "diabetes.csv"), *args]) == 0
    comma = _table_rows(capsys.readouterr().out)
    assert [row[:6] for row in semicolon] == [row[:6] for row in comma]  # not times


def test_compare_regression_csv(data_dir, capsys):
    code = main(
        [
            "compare",
            str(data_dir / "diabetes.csv"),
            "--target",
            "progression",
            "--strategies",
            "single,early:linear",
            "--cv",
            "3",
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "diabetes.csv: 442 rows, target 'progression'" in out
    assert "modalities (columns): demo (4), serum (6)" in out
    assert "ignored 1 column(s) outside every modality: patient" in out
    assert "task: regression (inferred; --task to override)" in out
    assert "3-fold cross-validation, shuffled (seed 0)" in out
    assert out.splitlines()[5].split()[3] == "r2"
    scores = {row[1]: float(row[3]) for row in _table_rows(out)}
    assert set(scores) == {"single:demo", "single:serum", "early:linear"}
    assert scores["single:demo"] > 0.3 and scores["early:linear"] > 0.45


def test_compare_says_when_the_task_is_a_guess(data_dir, capsys):
    # 15 integer codes, 10 rows each: class labels or a score out of 15
    path = str(data_dir / "codes.csv")
    args = ["compare", path, "--target", "code", "--strategies", "early:linear"]
    assert main([*args, "--cv", "2", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "task: regression (inferred; --task to override)" in captured.out
    assert captured.err.startswith(
        "warning: UserWarning: the target holds 15 distinct integers, each on 10 "
        "rows on average: they are taken as a quantity (task='regression'). If "
        "they are class labels, pass task='classification' (mmfuse compare: "
        "--task classification)."
    )
    assert main([*args, "--cv", "2", "--quiet", "--task", "classification"]) == 0
    captured = capsys.readouterr()
    assert "task: classification (--task)" in captured.out
    assert captured.err == ""


def test_compare_groups_column_is_not_a_feature(data_dir, capsys):
    args = [str(data_dir / "diabetes.csv"), "--target", "progression"]
    code = main(
        [
            "compare",
            *args,
            "--groups",
            "patient",
            "--strategies",
            "single:demo",
            "--cv",
            "4",
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "ignored" not in out  # 'patient' is the groups, not a column left over
    assert "4-fold cross-validation, grouped by 'patient', shuffled (seed 0)" in out
    assert float(_table_rows(out)[0][3]) > 0.3


def test_compare_missing_modality_in_a_subprocess(data_dir, tmp_path):
    # the README's missing-modality case, as a stranger runs it: text ids,
    # string labels, 'error' missing in 50 rows
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmfuse",
            "compare",
            str(data_dir / "breast.csv"),
            "--target",
            "diagnosis",
            "--strategies",
            "single,early:kernel,late:soft,subspace:mcca",
            "--cv",
            "3",
            "--quiet",
            "--json",
            str(tmp_path / "table.json"),
            "--plot",
            str(tmp_path / "plot.png"),
        ],
        capture_output=True,
        text=True,
        check=False,
        env=ENV,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert "breast.csv: 569 rows, target 'diagnosis'" in out
    assert "modalities (columns): mean (10), error (10), worst (10)" in out
    assert "ignored 1 column(s) outside every modality: id" in out
    assert "task: classification (inferred; --task to override)" in out
    records = json.loads((tmp_path / "table.json").read_text())
    assert len(records) == 6
    assert all(r["error"] is None and r["mean_accuracy"] > 0.8 for r in records)
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_reports_failures_under_the_table(data_dir, capsys):
    args = ["compare", str(data_dir / "iris_const.csv"), "--target", "species"]
    code = main([*args, "--strategies", "single,subspace", "--cv", "3", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0
    rows = _table_rows(captured.out)
    assert [row[1] for row in rows[-2:]] == ["subspace:mcca", "subspace:gcca"]
    assert [row[3] for row in rows[-2:]] == ["failed", "failed"]
    assert float(rows[0][3]) > 0.9  # single:petal
    failures = captured.out.split("failed (NaN scores, ranked last):\n")[1]
    assert failures.startswith(
        "  subspace:mcca: ValueError: modality 'const' is constant over the"
    )
    assert "FitFailedWarning" not in captured.err  # shown once, under the table
    # every strategy failed: the command fails
    code = main([*args, "--strategies", "subspace", "--cv", "3", "--quiet"])
    assert code == 1
    assert "every strategy failed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("3", "modalities (columns): block0 (4), block1 (3), block2 (3)"),
        ("4,4", "ignored 2 column(s) outside every modality: serum__s5, serum__s6"),
        ("demo=4,serum=6", "modalities (columns): demo (4), serum (6)"),
        ("serum,demo", "modalities (columns): serum (6), demo (4)"),
        (
            "body=demo__bmi+demo__bp,blood=serum__s1 + serum__s2",
            "modalities (columns): body (2), blood (2)",
        ),
    ],
)
def test_compare_blocks_as_in_python(data_dir, capsys, spec, expected):
    path = str(data_dir / "diabetes.csv")
    code = main(
        [
            "compare",
            path,
            "--target",
            "progression",
            "--groups",
            "patient",
            "--blocks",
            spec,
            "--strategies",
            "early:linear",
            "--cv",
            "2",
            "--quiet",
        ]
    )
    assert code == 0
    assert expected in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv", "--target", "digit"], "no such file: missing.csv"),
        (["{csv}", "--target", "label"], "--target column 'label' is not in"),
        (
            ["{csv}", "--target", "digit", "--blocks", "kar,pix"],
            "no column name starts with the prefix 'pix'",
        ),
        (["{csv}", "--target", "digit", "--blocks", "kar="], "must be NAME=WIDTH"),
        (
            ["{csv}", "--target", "digit", "--blocks", "kar=x"],
            "block 'kar' names unknown column(s) ['x']; X's columns are",
        ),
        (
            ["{csv}", "--target", "digit", "--blocks", "kar=2,pix=pix__0"],
            "mixes widths and column names",
        ),
        (
            ["{csv}", "--target", "digit", "--strategies", "nope"],
            "unknown strategy 'nope'",
        ),
        (
            ["{csv}", "--target", "digit", "--strategies", "single,,late"],
            "--strategies 'single,,late' has an empty item",
        ),
        (["{data}", "--target", "species"], "{data} is a directory"),
        (["{data}/empty.csv", "--target", "progression"], "has no rows, only a"),
        (
            ["{data}/iris_text.csv", "--target", "species"],
            "('clin__side') of modality 'clin' holds 'left' in row",
        ),
        (
            ["{data}/nan_target.csv", "--target", "progression"],
            "the target 'progression' is missing (NaN) in 2 row(s) (first: [3, 9])",
        ),
        (
            ["{data}/iris_empty_rows.csv", "--target", "species"],
            "2 row(s) (first: [5, 6]) have none of the modalities",
        ),
        (
            ["{data}/diabetes_semicolon.csv", "--target", "progression"],
            "diabetes_semicolon.csv reads as one column with --sep ','. Its first "
            "line looks separated by ';': pass --sep ';'.",
        ),
        (
            ["{data}/one_column.npz", "--target", "y"],
            "its 'X' has shape (150,); a .npz needs 'X' 2-D",
        ),
        (
            ["{data}/diabetes.csv", "--target", "progression", "--groups", "site"],
            "--groups column 'site' is not in",
        ),
        (
            ["{data}/diabetes.csv", "--target", "progression", "--plot", "{data}/n/p"],
            "--plot {data}/n/p: the directory {data}/n does not exist",
        ),
        (
            ["{data}/diabetes.csv", "--target", "progression", "--json", "{data}"],
            "--json {data} names a directory; give a file name in it",
        ),
        (
            ["{data}/diabetes.csv", "--target", "progression", "--plot", "{data}/p.x"],
            "matplotlib cannot write '.x' files",
        ),
        (
            ["{data}/diabetes.csv", "--target", "progression", "--cv", "100000"],
            "--cv=100000 asks for more folds than the 442 rows; use --cv <= 442",
        ),
        (
            ["{data}/iris_const.csv", "--target", "species", "--cv", "60"],
            "--cv=60 stratified folds need at least 60 rows of each class, but "
            "class 0 has 50; use --cv <= 50",
        ),
        (
            [
                "{data}/diabetes.csv",
                "--target",
                "progression",
                "--groups",
                "patient",
                "--cv",
                "41",
            ],
            "--cv=41 folds need at least 41 groups, but groups holds 40",
        ),
        (
            [
                "{data}/diabetes.csv",
                "--target",
                "progression",
                "--blocks",
                "mean=10,mean=20",
            ],
            "--blocks 'mean=10,mean=20' names ['mean'] more than once",
        ),
        (
            ["{data}/diabetes.csv", "--target", "progression", "--blocks", "demo,d"],
            "blocks 'demo' and 'd' overlap at column(s) [1, 2, 3, 4]",
        ),
        (
            ["{data}/diabetes.csv", "--target", "progression", "--blocks", "10,"],
            "--blocks '10,' has an empty item",
        ),
        (
            ["{data}/diabetes.csv", "--target", "progression", "--blocks", "4,a"],
            "--blocks '4,a' mixes forms",
        ),
        (
            ["{data}/diabetes.csv", "--target", "progression", "--blocks", "20,20"],
            "blocks widths [20, 20] add up to 40 columns but X has only 11",
        ),
    ],
)
def test_compare_errors(csv_file, data_dir, capsys, args, message):
    args = [a.format(csv=csv_file, data=data_dir) for a in args]
    assert main(["compare", *args, "--quiet"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("mmfuse compare: error: ")
    assert message.format(data=data_dir) in captured.err
    assert "rank" not in captured.out  # nothing ran


@pytest.mark.parametrize("cv", ["0", "-3", "x"])
def test_cv_below_two_is_a_usage_error(capsys, cv):
    with pytest.raises(SystemExit) as exc:
        main(["compare", "data.csv", "--target", "y", "--cv", cv])
    assert exc.value.code == 2
    assert (
        f"argument --cv: must be an integer >= 2 (the number of folds), got '{cv}'"
        in capsys.readouterr().err
    )


def test_target_with_one_class(tmp_path, capsys):
    bunch = load_mfeat(views=["mor"], as_frame=True)
    frame = bunch.frame.iloc[:50]  # rows in class order: all digit 0
    path = tmp_path / "one.csv"
    frame.to_csv(path, index=False)
    assert main(["compare", str(path), "--target", "digit", "--quiet"]) == 1
    assert "y has a single class ([0])" in capsys.readouterr().err


def test_usage_errors_and_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--help"])
    assert exc.value.code == 0
    assert "--target COL" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["compare", "data.csv"])
    assert exc.value.code == 2
    assert "the following arguments are required: --target" in capsys.readouterr().err
    assert main([]) == 2


def test_entry_point_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "mmfuse", "demo", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env=ENV,
    )
    assert result.returncode == 0 and "--plot FILE" in result.stdout


@pytest.mark.slow
def test_full_demo_fuses_better_than_any_single_modality(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mmfuse", "demo", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env=ENV,
    )
    assert result.returncode == 0, result.stderr
    rows = _table_rows(result.stdout)
    best = max(float(row[3]) for row in rows)
    best_single = max(float(row[3]) for row in rows if row[2] == "single")
    assert best > best_single
    assert (tmp_path / "mmfuse_demo.png").is_file()


def test_columns_without_prefixes_say_how_to_give_blocks(tmp_path, capsys):
    wine = load_wine(as_frame=True).frame
    wine.to_csv(tmp_path / "wine.csv", index=False)
    args = ["compare", str(tmp_path / "wine.csv"), "--target", "target", "--quiet"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "found no feature name of the form '<modality>__<feature>'" in err
    assert "On the command line: --blocks 3 (three blocks of near-equal" in err
    assert main([*args, "--blocks", "7,6", "--strategies", "single", "--cv", "3"]) == 0
    assert "modalities (columns): block0 (7), block1 (6)" in capsys.readouterr().out


def test_scheduler_that_does_not_answer(csv_file, capsys, monkeypatch):
    monkeypatch.setattr("mmfuse.utils._dask.CONNECT_TIMEOUT", 1.0)
    args = ["compare", str(csv_file), "--target", "digit", "--quiet"]
    assert main([*args, "--scheduler", "tcp://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "mmfuse compare: error: cannot reach a Dask scheduler at "
        "'tcp://127.0.0.1:9' within 1 s"
    )
    assert "pass the address it prints" in err


def test_scheduler_address_of_something_else(csv_file, capsys, monkeypatch):
    # At a port where an HTTP server answers (a dashboard's, 8787, given for
    # the scheduler's 8786), the client's handshake waited forever.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr("mmfuse.utils._dask.CONNECT_TIMEOUT", 1.0)
    address = f"tcp://127.0.0.1:{server.server_address[1]}"
    args = ["compare", str(csv_file), "--target", "digit", "--quiet"]
    try:
        assert main([*args, "--scheduler", address]) == 1
    finally:
        server.shutdown()
    err = capsys.readouterr().err
    assert f"cannot reach a Dask scheduler at '{address}' within 1 s" in err
    assert "no scheduler handshake within 6 s" in err


class _Quiet(http.server.BaseHTTPRequestHandler):
    """Answers nothing a Dask client understands, and logs nothing."""

    def log_message(self, *args):
        pass


def test_scheduler_without_dask_installed(csv_file, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails
    args = ["compare", str(csv_file), "--target", "digit", "--quiet"]
    assert main([*args, "--scheduler", "tcp://127.0.0.1:8786"]) == 1
    err = capsys.readouterr().err
    assert "needs dask.distributed, which is not installed" in err
    assert "pip install 'mmfuse[dask]'" in err
