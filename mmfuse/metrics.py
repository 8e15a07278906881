"""Scores for multimodal representations."""

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.utils import column_or_1d
from sklearn.utils.validation import check_is_fitted

from mmfuse._blocks import modality_position

__all__ = [
    "canonical_correlation",
    "canonical_correlation_from_covariance",
    "canonical_correlation_score",
    "coherence",
]


def canonical_correlation(variates: Sequence[ArrayLike]) -> NDArray[np.float64]:
    """Canonical correlation of each component across two or more views.

    For two views, component ``j`` scores the Pearson correlation between
    the views' ``j``-th variates; for more views, the mean of that
    correlation over all pairs of views (the SUMCOR criterion of multiset
    CCA, divided by the number of pairs). A variate that is constant on the
    rows given correlates 0 with everything.

    Parameters
    ----------
    variates : sequence of array-like of shape (n_samples, n_components)
        One array a view, rows aligned: e.g. ``MCCA().transform_views(X)``.

    Returns
    -------
    correlations : ndarray of shape (n_components,)
        One value a component, in [-1, 1].

    Raises
    ------
    ValueError
        With fewer than two views, views of different shapes, or fewer
        than two rows.

    See Also
    --------
    canonical_correlation_from_covariance : The same from the variates'
        covariances.
    canonical_correlation_score : Their penalized sum: the ``score`` of
        :class:`~mmfuse.cca.MCCA`, :class:`~mmfuse.cca.GCCA` and
        :class:`~mmfuse.cca.KCCA`.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfuse.metrics import canonical_correlation
    >>> a = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
    >>> b = np.array([[2.0, 1.0], [4.0, 0.0], [6.5, 1.0]])
    >>> np.round(canonical_correlation([a, b]), 3)
    array([ 0.998, -1.   ])
    """
    views = [np.asarray(v, dtype=np.float64) for v in variates]
    if len(views) < 2:
        raise ValueError(
            f"canonical_correlation needs the variates of at least two views; "
            f"got {len(views)}."
        )
    shapes = {v.shape for v in views}
    if len(shapes) != 1 or views[0].ndim != 2:
        raise ValueError(
            f"every view's variates must be 2-D of one shape (n_samples, "
            f"n_components); got shapes {[v.shape for v in views]}."
        )
    if views[0].shape[0] < 2:
        raise ValueError(
            f"canonical_correlation needs at least 2 rows; got {views[0].shape[0]}."
        )
    centred = np.stack([v - v.mean(axis=0) for v in views])
    return canonical_correlation_from_covariance(
        np.einsum("vnk,wnk->vwk", centred, centred)
    )


def canonical_correlation_from_covariance(cross: ArrayLike) -> NDArray[np.float64]:
    """Canonical correlation of each component from the variates' covariances.

    The same score as :func:`canonical_correlation` (for more than two views
    the mean over pairs of views of the Pearson correlation), computed from
    second moments instead of rows: what a closed-form fit has at hand, and
    what sums over chunks of rows give. A variate of zero variance
    correlates 0 with everything.

    Parameters
    ----------
    cross : array-like of shape (n_views, n_views, n_components)
        ``cross[v, w, j]`` is the covariance of the ``j``-th variates of views
        ``v`` and ``w``, the diagonal ``cross[v, v, j]`` their variances, all
        on any one scale (sums of centred products do as well as
        covariances).

    Returns
    -------
    correlations : ndarray of shape (n_components,)
        One value a component, in [-1, 1].

    Raises
    ------
    ValueError
        When ``cross`` is not of shape ``(n_views, n_views, n_components)``
        with at least two views.

    See Also
    --------
    canonical_correlation : The same from the variates themselves.

    Examples
    --------
    Two views, one component: variances 4 and 1, covariance 1.

    >>> import numpy as np
    >>> from mmfuse.metrics import canonical_correlation_from_covariance
    >>> cross = np.array([[[4.0], [1.0]], [[1.0], [1.0]]])
    >>> canonical_correlation_from_covariance(cross)
    array([0.5])
    """
    cross = np.asarray(cross, dtype=np.float64)
    if cross.ndim != 3 or cross.shape[0] != cross.shape[1] or cross.shape[0] < 2:
        raise ValueError(
            f"cross must have shape (n_views, n_views, n_components) with at "
            f"least two views: the covariance of each pair of views' variates, "
            f"a component at a time; got shape {cross.shape}."
        )
    n_views = cross.shape[0]
    variances = np.einsum("vvk->vk", cross)
    scale = np.sqrt(variances[:, None, :] * variances[None, :, :])
    safe = np.where(scale > 0, scale, 1.0)
    correlation = np.where(scale > 0, cross / safe, 0.0)
    upper = np.triu_indices(n_views, k=1)
    return np.clip(correlation[upper].mean(axis=0), -1.0, 1.0)


def canonical_correlation_score(variates: Sequence[ArrayLike]) -> float:
    """Sum over components of the canonical correlation above chance.

    ``Σ_j (ρ_j − t)`` with ``ρ_j`` the :func:`canonical_correlation` of
    component ``j`` and the threshold ``t = 2 / sqrt(P (n − 1))``, where
    ``n`` is the number of rows and ``P`` the number of pairs of views. For
    independent variates each pairwise Pearson correlation has mean 0 and
    variance ``1 / (n − 1)``, and the ``P`` pairwise correlations are
    uncorrelated, so their mean has the standard error
    ``1 / sqrt(P (n − 1))``: ``t`` is two standard errors, a correlation that
    independent variates exceed about 2 % of the time.

    On rows not used to fit the variates, a component that the views really
    share correlates above ``t`` and adds to the score, while a component
    fitted to noise correlates about 0 and costs about ``t``. So the score
    peaks at the number of shared components, which lets a grid search tune
    the number of components; the mean over components would always favour
    one component, and the plain sum would gain from a noise component as
    often as it loses.

    Parameters
    ----------
    variates : sequence of array-like of shape (n_samples, n_components)
        One array a view, rows aligned: e.g. ``MCCA().transform_views(X)``
        on held-out rows.

    Returns
    -------
    score : float
        Deterministic; at most ``n_components * (1 - t)``.

    Raises
    ------
    ValueError
        As :func:`canonical_correlation`.

    See Also
    --------
    canonical_correlation : The correlation of each component.
    mmfuse.cca.MCCA.score : This score of the fitted components on ``X``.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfuse.metrics import canonical_correlation_score
    >>> rng = np.random.RandomState(0)
    >>> shared = rng.standard_normal((400, 1))
    >>> a = np.hstack([shared, rng.standard_normal((400, 1))])
    >>> b = np.hstack([shared + rng.standard_normal((400, 1)),
    ...                rng.standard_normal((400, 1))])
    >>> round(canonical_correlation_score([a[:, :1], b[:, :1]]), 3)
    0.614
    >>> # A second component that the views do not share costs about 2/sqrt(399)
    >>> round(canonical_correlation_score([a, b]), 3)
    0.577
    """
    rho = canonical_correlation(variates)
    n_views, n_rows = len(variates), np.shape(variates[0])[0]
    pairs = n_views * (n_views - 1) / 2
    return float(np.sum(rho - 2 / np.sqrt(pairs * (n_rows - 1))))


# ------------------------------------------------------------------ coherence
def coherence(
    generator, X: ArrayLike, y: ArrayLike, classifiers: Mapping, given
) -> dict[str, float]:
    """Cross-modal coherence: how often generated modalities keep the label.

    The target modalities are generated from the ``given`` modalities of each
    row by ``generator.reconstruct(X, given=given)``, and each is classified
    by the classifier of that modality; the coherence of a target is the
    share of rows whose generated block is classified as the row's own label
    ``y`` (the coherence of multimodal VAEs, Shi et al. 2019). A
    generated block read by a classifier is a classifier of the given
    modalities, so the coherence cannot exceed the best accuracy reachable
    from them: compare it with a classifier trained on the given modalities.

    Parameters
    ----------
    generator : fitted estimator
        A generative model with ``reconstruct(X, given=...)``, ``blocks_``
        and ``modality_names_``, e.g. a fitted
        :class:`~mmfuse.deep.MultimodalVAE`.
    X : {array-like, DataFrame} of shape (n_samples, n_features)
        Multimodal data, as the generator takes it; every row must have one
        of the ``given`` modalities.
    y : array-like of shape (n_samples,)
        The label of each row.
    classifiers : dict
        ``{target modality: fitted classifier}``, by modality name or
        position; each classifier predicts a label from the columns of its
        modality, in ``X``'s units (as ``reconstruct`` returns them), e.g.
        one fitted on the real modality of training rows.
    given : list of (str or int)
        The modalities to generate from.

    Returns
    -------
    coherence : dict of str to float
        ``{target modality name: share of rows}``, each in [0, 1].

    Raises
    ------
    TypeError
        When ``generator`` cannot generate or ``classifiers`` is not a dict.
    ValueError
        When ``classifiers`` is empty or names an unknown modality, when
        ``y`` does not have one label a row of ``X``, or (from the
        generator) when a row has none of the given modalities.

    See Also
    --------
    mmfuse.deep.MultimodalVAE.reconstruct : The cross-modal generation.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mmfuse.datasets import make_multiview
    >>> from mmfuse.deep import MultimodalVAE
    >>> from mmfuse.metrics import coherence
    >>> X, latent = make_multiview(300, [5, 4], n_latent=2, random_state=0)
    >>> y = (latent[:, 0] > 0).astype(int)
    >>> vae = MultimodalVAE(blocks={"a": 5, "b": 4}, latent_dim=2, hidden=(16,),
    ...                     max_epochs=30, random_state=0).fit(X)
    >>> reader = LogisticRegression().fit(X[:, 5:], y)  # reads the real "b"
    >>> scores = coherence(vae, X, y, {"b": reader}, given=["a"])
    >>> list(scores), bool(scores["b"] > 0.7)
    (['b'], True)
    """
    if not callable(getattr(generator, "reconstruct", None)):
        raise TypeError(
            f"coherence needs a generative model with a reconstruct(X, given=...) "
            f"method, such as a fitted mmfuse.deep.MultimodalVAE; got "
            f"{type(generator).__name__}."
        )
    check_is_fitted(generator)
    if not isinstance(classifiers, Mapping):
        raise TypeError(
            f"classifiers must be a dict {{target modality: fitted classifier}}; "
            f"got {type(classifiers).__name__}."
        )
    if not classifiers:
        raise ValueError(
            "classifiers is empty: give at least one {target modality: fitted "
            "classifier}."
        )
    names = generator.modality_names_
    targets = {modality_position(t, names, "classifiers' key"): t for t in classifiers}
    X_generated = generator.reconstruct(X, given=given)
    y = column_or_1d(y)
    if len(y) != len(X_generated):
        raise ValueError(
            f"y has {len(y)} labels but X has {len(X_generated)} rows; give one "
            f"label a row."
        )
    return {
        names[m]: float(
            np.mean(classifiers[key].predict(X_generated[:, generator.blocks_[m]]) == y)
        )
        for m, key in targets.items()
    }
