"""Model selection on a Dask cluster through joblib: the answers of a local run."""

import joblib
import numpy as np
import pandas as pd
import pytest
from distributed import LocalCluster
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmfuse.__main__ import main
from mmfuse.cca import MCCA
from mmfuse.datasets import load_mfeat, make_multiview
from mmfuse.fusion import LateFusionClassifier, compare_fusion


@pytest.fixture(scope="module")
def mfeat():
    bunch = load_mfeat(views=["kar", "zer"])
    return bunch.data[::10], bunch.target[::10], bunch.blocks


def _on_cluster(client, run):
    with joblib.parallel_config(backend="dask"):
        return run()


def test_compare_fusion_gives_the_local_table(client, mfeat):
    X, y, blocks = mfeat

    def run():
        table = compare_fusion(
            X, y, blocks, strategies=["single", "late:soft"], cv=2, random_state=0
        )
        return table.drop(columns=["fit_time", "score_time"])

    pd.testing.assert_frame_equal(_on_cluster(client, run), run())


def test_grid_search_of_mcca_gives_the_local_best_params(client):
    X, _ = make_multiview(200, view_dims=[5, 6, 4], n_latent=2, random_state=0)
    search = GridSearchCV(
        MCCA(blocks=[5, 6, 4]),
        {"n_components": [1, 2, 3], "regularization": [0.0, 0.5]},
        cv=3,
        n_jobs=-1,
    )
    remote = _on_cluster(client, lambda: search.fit(X))
    remote_params = remote.best_params_
    remote_scores = remote.cv_results_["mean_test_score"]
    local = search.set_params(n_jobs=None).fit(X)  # no local process pool
    assert remote_params == local.best_params_
    np.testing.assert_array_equal(remote_scores, local.cv_results_["mean_test_score"])


def test_late_fusion_n_jobs_on_the_cluster(client, mfeat):
    X, y, blocks = mfeat
    model = LateFusionClassifier(
        [
            (
                name,
                make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
                name,
            )
            for name in blocks
        ],
        blocks=blocks,
        voting="stack",
        n_jobs=2,
    )
    remote = _on_cluster(client, lambda: model.fit(X, y).predict_proba(X))
    local = model.set_params(n_jobs=None).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(remote, local)


def test_cli_compare_on_a_running_cluster(client, tmp_path, capsys):
    bunch = load_mfeat(views=["kar", "zer"], as_frame=True)
    path = tmp_path / "digits.csv"
    bunch.frame.iloc[::10].to_csv(path, index=False)
    args = ["compare", str(path), "--target", "digit", "--cv", "2", "--quiet"]
    args += ["--strategies", "single,late:soft,early:linear"]
    address = client.scheduler.address
    assert main([*args, "--scheduler", address]) == 0
    remote = capsys.readouterr().out
    assert f"on the Dask cluster at {address} (2 workers)" in remote
    assert main(args) == 0
    local = capsys.readouterr().out

    def scores(out):  # the ranked rows, without the timing columns
        rows = [line.split() for line in out.splitlines() if line[:4].strip().isdigit()]
        return [row[:4] for row in rows]

    assert scores(remote) == scores(local) != []


def test_cli_compare_on_a_cluster_without_workers(tmp_path, capsys, monkeypatch):
    # It started the run and died 10 s later in joblib's TimeoutError
    # traceback ("DaskDistributedBackend has no worker").
    bunch = load_mfeat(views=["kar", "zer"], as_frame=True)
    path = tmp_path / "digits.csv"
    bunch.frame.iloc[::10].to_csv(path, index=False)
    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as empty:
        args = ["compare", str(path), "--target", "digit", "--cv", "2", "--quiet"]
        monkeypatch.setattr("mmfuse.utils._dask.CONNECT_TIMEOUT", 1.0)
        code = main([*args, "--scheduler", empty.scheduler_address])
    assert code == 1
    captured = capsys.readouterr()
    assert "has no worker after 1 s, so nothing would run" in captured.err
    assert "rank" not in captured.out
