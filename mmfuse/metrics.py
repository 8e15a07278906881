"""Scores for multimodal representations.

Canonical correlation of the views' variates, and cross-modal retrieval:
rank the items of one modality for queries of another in any shared
embedding (MCCA's, KCCA's, a VAE's latent, an aligner's), and score the
ranking.
"""

from collections.abc import Mapping, Sequence
from numbers import Integral

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import label_ranking_average_precision_score
from sklearn.metrics.pairwise import cosine_similarity, euclidean_distances
from sklearn.utils import check_array, column_or_1d
from sklearn.utils.validation import check_is_fitted

from mmfuse._blocks import modality_position

__all__ = [
    "canonical_correlation",
    "canonical_correlation_from_covariance",
    "canonical_correlation_score",
    "coherence",
    "mean_average_precision_score",
    "mean_reciprocal_rank_score",
    "recall_at_k_score",
    "retrieve",
]


# Cross-modal retrieval ---------------------------------------------------------
#
# Queries are the embeddings of one modality and items those of another, in
# one shared space. A tie in similarity counts against the query (an item as
# similar as the right one ranks before it), as in scikit-learn's
# label_ranking_average_precision_score, so that an embedding that maps every
# row to one point scores as chance, never as perfect.

_METRICS = ("cosine", "dot", "euclidean")


def _check_finite_rows(embedding, name, where):
    """Raise a ValueError naming the first row of ``embedding`` that is not finite.

    ``where`` says where the rows must be kept alike (e.g. ``"in every view"``).
    """
    bad = np.flatnonzero(~np.isfinite(embedding).all(axis=1))
    if bad.size:
        raise ValueError(
            f"{name} has NaN or infinite values in {bad.size} row(s), the "
            f"first at row {bad[0]}: a row whose modality is missing has no "
            f"embedding; keep only the rows whose modalities are present "
            f"({where}) first."
        )


def _check_embeddings(queries, items, metric):
    """Check queries, items and metric; return the similarity of each pair."""
    if not (isinstance(metric, str) and metric in _METRICS):
        raise ValueError(
            f"metric={metric!r} is not supported; use one of "
            f"{', '.join(map(repr, _METRICS))}."
        )
    arrays = []
    for name, embedding in (("queries", queries), ("items", items)):
        embedding = check_array(
            embedding, dtype=np.float64, ensure_all_finite=False, input_name=name
        )
        _check_finite_rows(embedding, name, "in queries and items alike")
        arrays.append(embedding)
    queries, items = arrays
    if queries.shape[1] != items.shape[1]:
        raise ValueError(
            f"queries have {queries.shape[1]} columns but items have "
            f"{items.shape[1]}: both must be embeddings in one shared space of "
            f"one width (e.g. two views of one MCCA's transform_views)."
        )
    if metric == "cosine":
        return cosine_similarity(queries, items)
    if metric == "dot":
        return queries @ items.T
    return -euclidean_distances(queries, items)


def _check_k(k, n_items):
    """``k`` as an int in ``[1, n_items]``."""
    if not isinstance(k, Integral) or isinstance(k, bool):
        raise TypeError(f"k must be an integer; got {k!r} ({type(k).__name__}).")
    if not 1 <= k <= n_items:
        raise ValueError(
            f"k={k} is out of range: use 1 <= k <= {n_items}, the number of items."
        )
    return int(k)


def _positive_ranks(queries, items, metric):
    """Rank (from 1) of item ``i`` among all items for query ``i``, ties against."""
    similarity = _check_embeddings(queries, items, metric)
    n_queries, n_items = similarity.shape
    if n_queries != n_items:
        raise ValueError(
            f"instance retrieval pairs query row i with item row i (the same "
            f"item seen in two modalities), so queries and items need the same "
            f"number of rows; got {n_queries} queries and {n_items} items."
        )
    positive = np.diagonal(similarity)
    return np.count_nonzero(similarity >= positive[:, None], axis=1)


def retrieve(
    queries: ArrayLike, items: ArrayLike, k: int | None = None, *, metric="cosine"
) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Rank the items of one modality for queries of another, most similar first.

    The embeddings of the two modalities must share one space, e.g. the
    views of one :meth:`MCCA.transform_views <mmfuse.cca.MCCA.transform_views>`
    call, or the latent means of a :class:`~mmfuse.deep.MultimodalVAE` from
    each modality alone. Items as similar as each other keep their order.

    Parameters
    ----------
    queries : array-like of shape (n_queries, n_dims)
        Embeddings of the queries (e.g. images).
    items : array-like of shape (n_items, n_dims)
        Embeddings of the items to rank (e.g. texts), in the same space.
    k : int, default=None
        How many items to return a query, at most ``n_items``; ``None``
        ranks them all.
    metric : {"cosine", "dot", "euclidean"}, default="cosine"
        Similarity: cosine, inner product, or minus the Euclidean distance.

    Returns
    -------
    indices : ndarray of shape (n_queries, k)
        Row ``q`` lists the positions in ``items`` of the ``k`` items most
        similar to query ``q``, most similar first.
    similarities : ndarray of shape (n_queries, k)
        Their similarities to the query, in decreasing order.

    Raises
    ------
    ValueError
        When queries and items differ in width, have NaN or infinite values
        (a missing modality), ``k`` is out of range or ``metric`` unknown.
    TypeError
        When ``k`` is not an integer.

    See Also
    --------
    recall_at_k_score : How often the paired item is among the top ``k``.
    mean_reciprocal_rank_score : The mean of one over its rank.
    mean_average_precision_score : How high the items of the query's class
        rank.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfuse.metrics import retrieve
    >>> queries = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> items = np.array([[0.0, 2.0], [1.0, 1.0], [3.0, 0.1]])
    >>> indices, similarities = retrieve(queries, items, k=2)
    >>> indices
    array([[2, 1],
           [0, 1]])
    >>> similarities.round(3)
    array([[0.999, 0.707],
           [1.   , 0.707]])

    On mfeat, from digit images (``pix``) to their Fourier coefficients
    (``fou``) through an MCCA fitted on both:

    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from mmfuse.cca import MCCA
    >>> from mmfuse.datasets import load_mfeat
    >>> X, y = load_mfeat(views=["pix", "fou"], return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> pix, fou = MCCA(n_components=10, blocks=[240, 76]).fit(X).transform_views(X)
    >>> indices, _ = retrieve(pix[:3], fou, k=5)
    >>> indices.shape
    (3, 5)
    """
    similarity = _check_embeddings(queries, items, metric)
    k = similarity.shape[1] if k is None else _check_k(k, similarity.shape[1])
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(similarity, order, axis=1)


def recall_at_k_score(
    queries: ArrayLike, items: ArrayLike, k: int = 1, *, metric="cosine"
) -> float:
    """Instance recall@k: how often a query's own item ranks in the top ``k``.

    Row ``i`` of ``queries`` and row ``i`` of ``items`` are one item seen in
    two modalities (an image and its caption); the score is the fraction of
    queries whose paired item is among the ``k`` items most similar to
    them, an item as similar as the paired one ranking before it. Chance is
    ``k / n_items``. For both directions, average ``recall_at_k_score(a, b)``
    and ``recall_at_k_score(b, a)``.

    scikit-learn's ``top_k_accuracy_score`` with one class an item would
    give the same where there are no ties, but breaks ties in the query's
    favour (and takes two items as a binary problem).

    Parameters
    ----------
    queries : array-like of shape (n_samples, n_dims)
        Embeddings of one modality.
    items : array-like of shape (n_samples, n_dims)
        Embeddings of the other modality, row ``i`` paired with query ``i``.
    k : int, default=1
        Size of the shortlist, in ``[1, n_samples]``.
    metric : {"cosine", "dot", "euclidean"}, default="cosine"
        Similarity: cosine, inner product, or minus the Euclidean distance.

    Returns
    -------
    score : float
        In [0, 1].

    Raises
    ------
    ValueError
        As :func:`retrieve`, and when queries and items differ in rows.
    TypeError
        When ``k`` is not an integer.

    See Also
    --------
    retrieve : The ranked items themselves.
    mean_reciprocal_rank_score : Scores every rank, not only the top ``k``.

    Examples
    --------
    Query 0 finds item 0 first; query 1 finds item 0 first and its own
    item second.

    >>> from mmfuse.metrics import recall_at_k_score
    >>> queries = [[1.0, 0.0], [0.8, 0.6]]
    >>> items = [[1.0, 0.1], [0.0, 1.0]]
    >>> recall_at_k_score(queries, items, k=1)
    0.5
    >>> recall_at_k_score(queries, items, k=2)
    1.0
    """
    ranks = _positive_ranks(queries, items, metric)
    k = _check_k(k, ranks.size)
    return float(np.mean(ranks <= k))


def mean_reciprocal_rank_score(
    queries: ArrayLike, items: ArrayLike, *, metric="cosine"
) -> float:
    """Mean over queries of one over the rank of the query's own item.

    Rows are paired as in :func:`recall_at_k_score`: the paired item at rank
    ``r`` (from 1; an item as similar as the paired one ranks before it)
    scores ``1 / r``.

    Parameters
    ----------
    queries : array-like of shape (n_samples, n_dims)
        Embeddings of one modality.
    items : array-like of shape (n_samples, n_dims)
        Embeddings of the other modality, row ``i`` paired with query ``i``.
    metric : {"cosine", "dot", "euclidean"}, default="cosine"
        Similarity: cosine, inner product, or minus the Euclidean distance.

    Returns
    -------
    score : float
        In (0, 1]; 1 when every query ranks its own item first.

    Raises
    ------
    ValueError
        As :func:`recall_at_k_score`.

    See Also
    --------
    recall_at_k_score : The fraction of paired items in the top ``k``.

    Examples
    --------
    The paired items rank first and second: (1 + 1/2) / 2.

    >>> from mmfuse.metrics import mean_reciprocal_rank_score
    >>> queries = [[1.0, 0.0], [0.8, 0.6]]
    >>> items = [[1.0, 0.1], [0.0, 1.0]]
    >>> mean_reciprocal_rank_score(queries, items)
    0.75
    """
    return float(np.mean(1.0 / _positive_ranks(queries, items, metric)))


def mean_average_precision_score(
    queries: ArrayLike,
    items: ArrayLike,
    labels: ArrayLike,
    item_labels: ArrayLike | None = None,
    *,
    metric="cosine",
) -> float:
    """Class-level mean average precision of ranking items for queries.

    The items relevant to a query are those of its class (label). A query's
    average precision is the mean, over its relevant items, of the
    precision of the shortlist that ends at that item; the score is its mean
    over queries. Computed by scikit-learn's
    ``label_ranking_average_precision_score`` on the similarities, so an
    item as similar as a relevant one ranks before it. Chance is about the
    share of each class among the items.

    Parameters
    ----------
    queries : array-like of shape (n_queries, n_dims)
        Embeddings of one modality.
    items : array-like of shape (n_items, n_dims)
        Embeddings of the other modality, in the same space.
    labels : array-like of shape (n_queries,)
        The class of each query.
    item_labels : array-like of shape (n_items,), default=None
        The class of each item; ``None`` when the items are the queries'
        paired rows (the same samples seen in another modality), which share
        ``labels``.
    metric : {"cosine", "dot", "euclidean"}, default="cosine"
        Similarity: cosine, inner product, or minus the Euclidean distance.

    Returns
    -------
    score : float
        In (0, 1]; 1 when every query ranks all the items of its class first.

    Raises
    ------
    ValueError
        As :func:`retrieve`; when ``labels`` or ``item_labels`` do not have
        one entry a row, or when a query's class has no item.

    See Also
    --------
    recall_at_k_score : Instance-level retrieval of the paired item.

    Examples
    --------
    Query 0 (class "a") ranks the items a, b, a: precisions 1 and 2/3 at
    its relevant items. Query 1 (class "b") ranks a, b, a: precision 1/2.

    >>> from mmfuse.metrics import mean_average_precision_score
    >>> queries = [[1.0, 0.0], [0.0, 1.0]]
    >>> items = [[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]
    >>> score = mean_average_precision_score(
    ...     queries, items, ["a", "b"], item_labels=["a", "b", "a"]
    ... )
    >>> round(score, 4)  # ((1 + 2/3) / 2 + 1/2) / 2
    0.6667
    """
    similarity = _check_embeddings(queries, items, metric)
    n_queries, n_items = similarity.shape
    labels = _check_labels(labels, n_queries, "labels", "queries")
    if item_labels is None:
        if n_items != n_queries:
            raise ValueError(
                f"item_labels is needed when the items are not the queries' "
                f"paired rows: got {n_queries} queries and {n_items} items; "
                f"pass one label an item."
            )
        item_labels = labels
    item_labels = _check_labels(item_labels, n_items, "item_labels", "items")
    relevant = labels[:, None] == item_labels[None, :]
    orphans = np.flatnonzero(~relevant.any(axis=1))
    if orphans.size:
        raise ValueError(
            f"{orphans.size} query(ies) have a class with no item, e.g. query "
            f"{orphans[0]} of class {labels[orphans].tolist()[0]!r}: its average "
            f"precision is undefined; rank items that include every query's "
            f"class, or drop those queries."
        )
    return label_ranking_average_precision_score(relevant.astype(int), similarity)


def _check_labels(labels, n_rows, name, rows_name):
    """``labels`` as a 1-D array of one entry a row."""
    if labels is None:
        raise ValueError(
            f"{name} is None: class-level retrieval needs one class label a "
            f"row of the {rows_name}."
        )
    labels = column_or_1d(labels)
    if labels.shape[0] != n_rows:
        raise ValueError(
            f"{name} has {labels.shape[0]} entries but {rows_name} have "
            f"{n_rows} rows; give one label a row."
        )
    return labels


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
        With fewer than two views, views of different shapes, fewer than
        two rows, or NaN or infinite values (a row lacking a modality).

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
    for i, view in enumerate(views):
        _check_finite_rows(view, f"the variates of view {i}", "in every view")
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
    variates = list(variates)  # a generator too, as canonical_correlation takes
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
    given : str, int or list of (str or int)
        The modality or modalities to generate from.

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
    if len(targets) < len(classifiers):
        raise ValueError(
            f"classifiers names a modality twice (by name and by position: "
            f"{list(classifiers)}); give one classifier a target modality."
        )
    y = column_or_1d(y)
    if len(y) != len(X):
        raise ValueError(
            f"y has {len(y)} labels but X has {len(X)} rows; give one label a row."
        )
    for key, classifier in classifiers.items():
        classes = getattr(classifier, "classes_", None)
        if classes is not None and not np.isin(y, classes).any():
            raise ValueError(
                f"none of y's labels (e.g. {y[:1].tolist()[0]!r}) is a class of "
                f"the classifier of {key!r} (e.g. {np.asarray(classes)[:5].tolist()}"
                f"): every generated row would count as wrong. Give y in the "
                f"labels the classifier was fitted on."
            )
    X_generated = generator.reconstruct(X, given=given)
    return {
        names[m]: float(
            np.mean(classifiers[key].predict(X_generated[:, generator.blocks_[m]]) == y)
        )
        for m, key in targets.items()
    }
