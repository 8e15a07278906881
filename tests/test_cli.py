import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv", "--target", "digit"], "no such file: missing.csv"),
        (["{csv}", "--target", "label"], "target column 'label' is not in"),
        (
            ["{csv}", "--target", "digit", "--blocks", "kar,pix"],
            "no column name starts with the prefix 'pix'",
        ),
        (["{csv}", "--target", "digit", "--blocks", "kar=x"], "must be NAME=WIDTH"),
        (
            [
                "{csv}",
                "--target",
                "kar__0",
                "--task",
                "classification",
                "--strategies",
                "nope",
            ],
            "unknown strategy 'nope'",
        ),
    ],
)
def test_compare_errors(csv_file, capsys, args, message):
    args = [a.format(csv=csv_file) for a in args]
    assert main(["compare", *args, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mmfuse compare: error: ") and message in err


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
def test_full_demo_under_two_minutes(tmp_path):
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "mmfuse", "demo", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env=ENV,
    )
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    rows = _table_rows(result.stdout)
    best = max(float(row[3]) for row in rows)
    best_single = max(float(row[3]) for row in rows if row[2] == "single")
    assert best > best_single
    assert (tmp_path / "mmfuse_demo.png").is_file()
    print(f"mmfuse demo: {elapsed:.1f} s")
    assert elapsed < 120
