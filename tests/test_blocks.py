import pickle
from numbers import Real

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmfuse import (
    ModalitySelector,
    present_modalities,
    resolve_blocks,
    stack_modalities,
)
from mmfuse._blocks import (
    check_complete,
    check_numeric,
    modality_names,
    numeric_target,
    per_modality,
    resolve_blocks_for,
)
from mmfuse.cca import GCCA, KCCA, MCCA
from mmfuse.utils._compat import Interval, StrOptions


def as_lists(indices):
    return [i.tolist() for i in indices]


NAMES = ["img__a", "img__b", "txt__a", "txt__b", "txt__c", "other"]


# --- every accepted form -----------------------------------------------------


def test_int_gives_near_equal_consecutive_blocks():
    indices, names = resolve_blocks(3, 7)
    assert as_lists(indices) == [[0, 1, 2], [3, 4], [5, 6]]
    assert names == ["block0", "block1", "block2"]


def test_widths_and_trailing_columns_ignored():
    indices, names = resolve_blocks([2, 3], 6)
    assert as_lists(indices) == [[0, 1], [2, 3, 4]]
    assert names == ["block0", "block1"]


def test_tuple_of_widths():
    indices, _ = resolve_blocks((1, 1), 2)
    assert as_lists(indices) == [[0], [1]]


def test_slices_index_lists_and_masks():
    mask = np.array([False, False, False, False, True, True])
    indices, names = resolve_blocks([slice(0, 2), [3, 2], mask], 6)
    assert as_lists(indices) == [[0, 1], [3, 2], [4, 5]]
    assert names == ["block0", "block1", "block2"]


def test_negative_slice_bounds():
    indices, _ = resolve_blocks([slice(0, 2), slice(-2, None)], 5)
    assert as_lists(indices) == [[0, 1], [3, 4]]


def test_numpy_index_arrays():
    indices, _ = resolve_blocks([np.array([0, 1]), np.arange(2, 4)], 4)
    assert as_lists(indices) == [[0, 1], [2, 3]]


def test_named_widths():
    indices, names = resolve_blocks({"image": 2, "text": 3}, 5)
    assert as_lists(indices) == [[0, 1], [2, 3, 4]]
    assert names == ["image", "text"]


def test_named_positions():
    indices, names = resolve_blocks({"b": slice(2, 4), "a": [0, 1]}, 4)
    assert as_lists(indices) == [[2, 3], [0, 1]]
    assert names == ["b", "a"]


def test_named_column_names():
    spec = {"i": ["img__b", "img__a"], "t": ["txt__c"]}
    indices, names = resolve_blocks(spec, 6, NAMES)
    assert as_lists(indices) == [[1, 0], [4]]
    assert names == ["i", "t"]


def test_named_prefixes():
    indices, names = resolve_blocks({"i": "img", "t": "txt"}, 6, NAMES)
    assert as_lists(indices) == [[0, 1], [2, 3, 4]]
    assert names == ["i", "t"]


def test_list_of_prefixes_names_the_blocks():
    indices, names = resolve_blocks(["txt", "img"], 6, NAMES)
    assert as_lists(indices) == [[2, 3, 4], [0, 1]]
    assert names == ["txt", "img"]


def test_prefix_without_separator_falls_back_to_plain_prefix():
    indices, _ = resolve_blocks(["px", "sn"], 4, ["px0", "px1", "sn0", "sn1"])
    assert as_lists(indices) == [[0, 1], [2, 3]]


def test_separator_prefix_preferred_over_plain_prefix():
    cols = ["pix__0", "pixel_count", "fou__0"]
    indices, _ = resolve_blocks(["pix", "fou"], 3, cols)
    assert as_lists(indices) == [[0], [2]]


def test_auto_from_column_transformer_names_ignores_unprefixed():
    indices, names = resolve_blocks("auto", 6, NAMES)
    assert as_lists(indices) == [[0, 1], [2, 3, 4]]
    assert names == ["img", "txt"]


def test_auto_on_column_transformer_output():
    X = pd.DataFrame(np.arange(24.0).reshape(6, 4), columns=list("abcd"))
    ct = ColumnTransformer(
        [("left", StandardScaler(), ["a", "b"]), ("right", "passthrough", ["c", "d"])]
    ).set_output(transform="pandas")
    out = ct.fit_transform(X)
    indices, names = resolve_blocks("auto", out.shape[1], out.columns)
    assert names == ["left", "right"]
    assert as_lists(indices) == [[0, 1], [2, 3]]


# --- every error, with its message -------------------------------------------


@pytest.mark.parametrize(
    "blocks, n_features, feature_names, match",
    [
        ([slice(0, 3), slice(2, 4)], 4, None, r"'block0' and 'block1' overlap.*\[2\]"),
        ({"a": [0, 1], "b": [1]}, 3, None, r"'a' and 'b' overlap at column\(s\) \[1\]"),
        ([[0], []], 3, None, r"block 'block1' is empty"),
        ([slice(2, 2), [0]], 3, None, r"block 'block0' = slice\(2, 2.*selects no col"),
        ({"a": [0, 5]}, 3, None, r"block 'a' has column index 5 out of range.*3 col"),
        ([[0], [-1]], 3, None, r"column index -1 out of range"),
        ([slice(0, 9)], 3, None, r"block 'block0' = slice\(0, 9.*out of range"),
        ([2, 3], 4, None, r"add up to 5 columns but X has only 4.*'block1'"),
        ([2, 0], 4, None, r"block 'block1' has width 0"),
        (5, 3, None, r"blocks=5 asks for 5 blocks but X has n_features=3"),
        ({"a": ["img__a", "nope"]}, 6, NAMES, r"block 'a' names unknown column.*nope"),
        (["img", "zzz"], 6, NAMES, r"block 'zzz': no column name starts with.*'zzz'"),
        ("auto", 3, None, r"blocks='auto' needs feature names.*no feature names"),
        ("auto", 2, ["a", "b"], r"found no feature name of the form"),
        (["img"], 3, None, r"prefix 'img', but X has no feature names"),
        ("image", 3, None, r"blocks='image' is not understood"),
        ({1: [0]}, 3, None, r"keys must be non-empty modality names"),
        ([], 3, None, r"blocks is empty"),
        ([2, [0]], 3, None, r"block 'block0' is an int while other blocks"),
        ([[0, 0], [1]], 3, None, r"lists column 0 more than once"),
        ([np.ones(2, bool)], 3, None, r"boolean mask of length 2 but X has 3"),
        ([[False]], 1, None, r"boolean mask that selects no column"),
        ([[[0, 1]]], 3, None, r"must be a slice, a prefix or a 1-D list"),
        ([[0.5]], 3, None, r"is not understood: give column positions"),
        (2.5, 3, None, r"of type float is not understood"),
        (None, 3, None, r"of type NoneType is not understood"),
        (["a", "a"], 3, ["a__x", "b__y", "c__z"], r"modality names must be unique"),
        ([slice(0, 2, 0)], 3, None, r"has step 0"),
        ([slice("a", None)], 3, None, r"must be a slice of column positions"),
    ],
)
def test_errors_name_the_block_and_problem(blocks, n_features, feature_names, match):
    with pytest.raises(ValueError, match=match):
        resolve_blocks(blocks, n_features, feature_names)


def test_fewer_blocks_than_needed():
    with pytest.raises(ValueError, match=r"needs at least 2 modality blocks.*1"):
        resolve_blocks(1, 4, min_blocks=2)


# --- missing modalities ------------------------------------------------------


def test_present_modalities_dense_and_sparse():
    X = np.array([[1.0, 2.0, 3.0], [np.nan, np.nan, 3.0], [np.nan, 2.0, np.nan]])
    expected = [[True, True], [False, True], [True, False]]
    assert_array_equal(present_modalities(X, [2, 1]), expected)
    assert_array_equal(present_modalities(sp.csr_array(X), [2, 1]), expected)


def test_present_modalities_auto_on_frame():
    X = pd.DataFrame([[np.nan, 1.0]], columns=["a__0", "b__0"])
    assert_array_equal(present_modalities(X), [[False, True]])
    # pandas' NA of nullable dtypes is missing too (it raised TypeError).
    nullable = pd.DataFrame(
        {"a__0": [pd.NA, 1], "a__1": [pd.NA, 2], "b__0": [3, pd.NA]}, dtype="Int64"
    )
    assert_array_equal(present_modalities(nullable), [[False, True], [True, False]])


@pytest.mark.parametrize(
    "blocks",
    [3, [2, 1, 3], ["txt", "img"], {"b": [0, 1], "a": [3]}, (slice(0, 2),), "auto"],
)
def test_modality_names_are_those_resolve_blocks_gives(blocks):
    _, names = resolve_blocks(blocks, 6, NAMES)
    assert modality_names(blocks) == (None if blocks == "auto" else names)


@pytest.mark.parametrize("blocks", [0, -2, [], {}, None, 2.0, True, "img"])
def test_modality_names_cannot_be_told_before_x(blocks):
    assert not modality_names(blocks)


def test_modality_names_reject_a_dict_key_that_is_no_name():
    with pytest.raises(ValueError, match="got the key 1"):
        modality_names({1: 2})


def test_resolve_blocks_for_reads_width_and_string_column_names():
    frame = pd.DataFrame(np.ones((2, 3)), columns=["img__a", "img__b", 7])
    indices, names = resolve_blocks_for("auto", frame)
    assert (as_lists(indices), names) == ([[0, 1]], ["img"])
    indices, names = resolve_blocks_for(["7"], frame)
    assert (as_lists(indices), names) == ([[2]], ["7"])
    indices, names = resolve_blocks_for(2, sp.csr_array(np.ones((2, 3))))
    assert (as_lists(indices), names) == ([[0, 1], [2]], ["block0", "block1"])
    with pytest.raises(ValueError, match="needs at least 3 modality blocks"):
        resolve_blocks_for(2, np.ones((2, 3)), min_blocks=3)


def test_check_complete_messages():
    X = np.array([[1.0, 2.0, 3.0], [np.nan, np.nan, 3.0]])
    blocks, names = resolve_blocks({"img": 2, "txt": 1}, 3)
    with pytest.raises(ValueError, match=r"1 row\(s\) lack modality 'img'.*MCCA"):
        check_complete(X, blocks, names, "MCCA")
    X[1] = [np.nan, 1.0, 3.0]
    with pytest.raises(ValueError, match=r"NaN in part of modality 'img'"):
        check_complete(X, blocks, names, "MCCA")
    X[1] = [1.0, 1.0, 3.0]
    assert check_complete(X, blocks, names, "MCCA").all()


def test_check_complete_names_columns_nan_in_every_row():
    # An empty column of a table: named, rather than every row blamed.
    X = np.array([[1.0, np.nan, 3.0], [2.0, np.nan, 4.0]])
    blocks, names = resolve_blocks({"img": 2, "txt": 1}, 3)
    match = r"1 column\(s\) of modality 'img' are NaN in every row .*: \[1\]\. MCCA"
    with pytest.raises(ValueError, match=match):
        check_complete(X, blocks, names, "MCCA", allow_missing=True)
    with pytest.raises(ValueError, match=r"values: \['img__b'\]\. MCCA"):
        check_complete(X, blocks, names, "MCCA", columns=np.array(["a", "img__b", "c"]))
    X[:, 0] = np.nan  # the whole block: a modality missing in every row
    with pytest.raises(ValueError, match=r"2 row\(s\) lack modality 'img'"):
        check_complete(X, blocks, names, "MCCA")


def test_an_estimator_names_the_empty_column_of_a_frame():
    pd = pytest.importorskip("pandas")
    from mmfuse.cca import MCCA

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(20, 4)), columns=["a_x", "a_y", "b_x", "b_y"])
    frame["b_y"] = np.nan
    with pytest.raises(ValueError, match=r"modality 'b' are NaN .*\['b_y'\]\. MCCA"):
        MCCA(n_components=1, blocks={"a": 2, "b": 2}).fit(frame)


def test_check_complete_allow_missing_returns_presence():
    X = np.array([[1.0, 2.0, 3.0], [np.nan, np.nan, 3.0], [1.0, 2.0, np.nan]])
    blocks, names = resolve_blocks({"img": 2, "txt": 1}, 3)
    present = check_complete(X, blocks, names, "MCCA", allow_missing=True)
    assert_array_equal(present, [[True, True], [False, True], [True, False]])
    X[2, 0] = np.nan  # now part of 'img' is NaN in a row that has it
    with pytest.raises(ValueError, match=r"1 row\(s\) have NaN in part of modality"):
        check_complete(X, blocks, names, "MCCA", allow_missing=True)


# --- stack_modalities --------------------------------------------------------


def test_stack_modalities_arrays_round_trip():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    X, blocks = stack_modalities(image=a, text=b)
    assert blocks == {"image": 3, "text": 2}
    indices, names = resolve_blocks(blocks, X.shape[1])
    assert names == ["image", "text"]
    assert_array_equal(X[:, indices[0]], a)
    assert_array_equal(X[:, indices[1]], b)
    X2, blocks2 = stack_modalities({"image": a, "text": b})
    assert_array_equal(X, X2)
    assert blocks2 == blocks


def test_stack_modalities_frames_get_prefixed_names():
    a = pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]})
    X, blocks = stack_modalities(img=a, txt=np.zeros((2, 1)))
    assert list(X.columns) == ["img__x", "img__y", "txt__0"]
    indices, names = resolve_blocks("auto", X.shape[1], X.columns)
    assert names == ["img", "txt"]
    assert blocks == {"img": 2, "txt": 1}


def test_stack_modalities_sparse():
    X, blocks = stack_modalities(a=sp.eye(3, format="csr"), b=np.ones((3, 1)))
    assert sp.issparse(X) and X.shape == (3, 4)
    assert_array_equal(X.toarray()[:, 3], 1.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"a": np.ones((3, 1)), "b": np.ones((4, 1))}, r"'b' has 4 rows but 'a' has 3"),
        ({"a": np.ones(3)}, r"'a' has shape \(3,\).*reshape"),
        ({}, r"at least one modality"),
    ],
)
def test_stack_modalities_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        stack_modalities(**kwargs)


def test_stack_modalities_dict_and_kwargs_together():
    with pytest.raises(ValueError, match="not both"):
        stack_modalities({"a": np.ones((2, 1))}, b=np.ones((2, 1)))


# --- ModalitySelector --------------------------------------------------------


def test_selector_by_name_and_feature_names_out():
    X = pd.DataFrame(np.arange(12.0).reshape(2, 6), columns=NAMES)
    selector = ModalitySelector(modality="txt").fit(X)
    assert_array_equal(selector.transform(X), X.iloc[:, 2:5].to_numpy())
    assert selector.get_feature_names_out().tolist() == ["txt__a", "txt__b", "txt__c"]
    out = selector.set_output(transform="pandas").transform(X)
    assert list(out.columns) == ["txt__a", "txt__b", "txt__c"]


def test_selector_in_pipeline_keeps_nan_and_sparse():
    X = np.array([[1.0, np.nan, 2.0], [3.0, np.nan, 4.0]])
    out = ModalitySelector(blocks=[1, 2], modality=1).fit_transform(X)
    assert out.shape == (2, 2) and np.isnan(out[:, 0]).all()
    Xs = sp.csr_array(np.eye(3))
    assert sp.issparse(ModalitySelector(blocks=3, modality=2).fit_transform(Xs))
    pipe = make_pipeline(ModalitySelector(blocks=[1, 2], modality=0), StandardScaler())
    assert pipe.fit_transform(np.arange(6.0).reshape(2, 3)).shape == (2, 1)


def test_selector_clone_and_pickle():
    X = np.arange(12.0).reshape(3, 4)
    selector = ModalitySelector(blocks=2, modality=1).fit(X)
    assert_array_equal(pickle.loads(pickle.dumps(selector)).transform(X), X[:, 2:])
    assert clone(selector).get_params() == {"blocks": 2, "modality": 1}


@pytest.mark.parametrize(
    "modality, match",
    [
        (
            "nope",
            r"modality 'nope' is not one of the modalities \['block0', 'block1'\]",
        ),
        (3, r"modality 3 is not one of the modalities.*position from 0 to 1"),
    ],
)
def test_selector_errors(modality, match):
    with pytest.raises(ValueError, match=match):
        ModalitySelector(blocks=2, modality=modality).fit(np.ones((2, 4)))


def test_selector_checks_columns_at_transform():
    selector = ModalitySelector(blocks=2).fit(np.ones((2, 4)))
    with pytest.raises(ValueError, match="X has 3 features"):
        selector.transform(np.ones((2, 3)))


@pytest.mark.parametrize(
    "estimator",
    [
        ModalitySelector(blocks=[2, 3], modality=1),
        MCCA(1, blocks=[2, 3]),
        GCCA(1, blocks=[2, 3]),
        KCCA(1, blocks=[2, 3]),
    ],
)
def test_a_cell_that_is_no_number_is_named_with_column_and_modality(estimator):
    X = np.random.RandomState(0).standard_normal((20, 5)).astype(object)
    X[4, 3] = "left"
    message = (
        r"X column 3 of modality 'block1' holds 'left' in row 4, which is not a "
        rf"number; {type(estimator).__name__} takes numbers only"
    )
    with pytest.raises(ValueError, match=message):
        estimator.fit(X)
    estimator.fit(X[X[:, 3] != "left"].astype(float))
    with pytest.raises(ValueError, match=message):
        estimator.transform(X)


def test_check_numeric_counts_missing_values_as_numbers():
    frame = pd.DataFrame({"a__x": [1.0, None, 3.0], "b__y": [1, pd.NA, "4"]})
    check_numeric(frame, "me")  # None, pd.NA and numeric strings pass
    frame.loc[2, "b__y"] = "four"
    with pytest.raises(
        ValueError, match=r"X column 1 \('b__y'\) holds 'four' in row 2"
    ):
        check_numeric(frame, "me")


def test_numeric_target_names_the_label():
    np.testing.assert_array_equal(numeric_target(["1", 2.5], "R", "C"), [1.0, 2.5])
    with pytest.raises(ValueError, match=r"y holds 'cat' in row 1, which is not a"):
        numeric_target([1.0, "cat"], "R", "C")


# --- per-modality parameters --------------------------------------------------

UNIT = Interval(Real, 0, 1, closed="both")
AB = ["a", "b"]


@pytest.mark.parametrize(
    "value, expected",
    [
        (0.5, [0.5, 0.5]),
        ([0.1, 0.2], [0.1, 0.2]),
        ((0.1, 0.2), [0.1, 0.2]),
        (np.array([0.1, 0.2]), [0.1, 0.2]),
    ],
)
def test_per_modality_repeats_a_scalar_and_reads_a_sequence(value, expected):
    assert per_modality("r", value, AB, UNIT) == expected


def test_per_modality_without_default_takes_a_dict_as_one_value():
    params = {"a": 1.0}  # e.g. KCCA's kernel_params, one dict for every view
    assert per_modality("kernel_params", params, AB, dict, None) == [params, params]
    with pytest.raises(ValueError, match=r"r=\{'a': 0.5\} must be a float"):
        per_modality("r", {"a": 0.5}, AB, UNIT)


def test_per_modality_with_default_reads_a_dict_by_modality_name():
    assert per_modality("r", {"b": 0.3}, AB, UNIT, default=0.0) == [0.0, 0.3]
    assert per_modality("r", {"b": 0.3, "a": 1}, AB, UNIT, default=0.0) == [1, 0.3]
    # the other forms are read as without a default
    assert per_modality("r", 0.2, AB, UNIT, default=0.0) == [0.2, 0.2]
    assert per_modality("r", [0.1, 0.2], AB, UNIT, default=0.0) == [0.1, 0.2]


@pytest.mark.parametrize(
    "value, kwargs, match",
    [
        (
            [0.1, 0.2, 0.3],
            {},
            r"r=\[0.1, 0.2, 0.3\] has 3 entries but there are 2 modalities "
            r"\['a', 'b'\]; give one value for all, or one a modality\.",
        ),
        (
            2.0,
            {"why": "a share"},
            r"r=2.0 must be a float in the range \[0.0, 1.0\]: a share\.",
        ),
        (
            [0.1, 2.0],
            {},
            r"r=\[0.1, 2.0\] gives 2.0 for modality 'b', but each value must be "
            r"a float in the range \[0.0, 1.0\]\. Change that entry\.",
        ),
        (
            {"c": 0.1, "z": 0.2, "a": 0.3},
            {"default": 0.0},
            r"^r names unknown modalities \['c', 'z'\]; the modalities are "
            r"\['a', 'b'\]\.$",
        ),
        (
            {"b": -1.0},
            {"default": 0.0},
            r"r=\{'b': -1.0\} gives -1.0 for modality 'b', but each value",
        ),
    ],
)
def test_per_modality_errors_name_the_parameter_and_modality(value, kwargs, match):
    with pytest.raises(ValueError, match=match):
        per_modality("r", value, AB, UNIT, **kwargs)


def test_per_modality_describes_every_kind_of_constraint():
    with pytest.raises(
        ValueError,
        match=r"k=3 must be one of \['x', 'y'\] or a callable or a dict or None\.",
    ):
        per_modality("k", 3, AB, StrOptions({"y", "x"}), callable, dict, None)
    assert per_modality("k", len, AB, StrOptions({"x"}), callable) == [len, len]
    assert per_modality("anything", object, AB) == [object, object]
