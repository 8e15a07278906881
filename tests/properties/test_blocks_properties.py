"""Block resolver properties: valid specs round-trip, junk raises ValueError."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mmfuse import resolve_blocks


@st.composite
def partitions(draw):
    """Random blocks over n_features columns, with some columns left out."""
    n_features = draw(st.integers(1, 25))
    order = draw(st.permutations(range(n_features)))
    n_blocks = draw(st.integers(1, n_features))
    cuts = (
        sorted(draw(st.sets(st.integers(1, n_features - 1), max_size=n_blocks - 1)))
        if n_features > 1
        else []
    )
    pieces = np.split(np.asarray(order, dtype=int), cuts)
    keep = draw(st.lists(st.booleans(), min_size=len(pieces), max_size=len(pieces)))
    if not any(keep):
        keep[0] = True
    return n_features, [p for p, k in zip(pieces, keep, strict=True) if k]


def _names(n_features, blocks):
    names = [f"free{j}" for j in range(n_features)]
    for b, block in enumerate(blocks):
        for j, column in enumerate(block):
            names[column] = f"m{b}__{j}"
    return names


# Derandomized (as tests/test_contract.py): CI draws the same cases every run.
@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(partitions(), st.sampled_from(["positions", "mask", "names", "prefix", "dict"]))
def test_valid_specs_round_trip(partition, form):
    n_features, blocks = partition
    feature_names = _names(n_features, blocks)
    if form == "positions":
        spec = [b.tolist() for b in blocks]
    elif form == "mask":
        spec = [np.isin(np.arange(n_features), b) for b in blocks]
        blocks = [np.sort(b) for b in blocks]
    elif form == "names":
        spec = [[feature_names[c] for c in b] for b in blocks]
    elif form == "prefix":
        spec = [f"m{i}" for i in range(len(blocks))]
        blocks = [np.sort(b) for b in blocks]  # a prefix selects in column order
    else:
        spec = {f"mod{i}": b.tolist() for i, b in enumerate(blocks)}
    indices, names = resolve_blocks(spec, n_features, feature_names)
    assert [i.tolist() for i in indices] == [b.tolist() for b in blocks]
    assert len(names) == len(blocks)
    if form == "prefix":
        auto, auto_names = resolve_blocks("auto", n_features, feature_names)
        assert sorted(map(sorted, (a.tolist() for a in auto))) == sorted(
            map(sorted, (b.tolist() for b in blocks))
        )
        assert sorted(auto_names) == sorted(names)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=6), st.integers(0, 5))
def test_widths_and_slices_agree(widths, extra):
    n_features = sum(widths) + extra
    by_width, _ = resolve_blocks(widths, n_features)
    bounds = np.cumsum([0, *widths])
    slices = [
        slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    by_slice, _ = resolve_blocks(slices, n_features)
    assert [a.tolist() for a in by_width] == [b.tolist() for b in by_slice]


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(partitions(), st.sampled_from(["out_of_range", "overlap", "empty", "unknown"]))
def test_invalid_specs_raise_value_error(partition, fault):
    n_features, blocks = partition
    spec = [b.tolist() for b in blocks]
    feature_names = _names(n_features, blocks)
    if fault == "out_of_range":
        spec[-1].append(n_features)
    elif fault == "overlap":
        spec.append([spec[0][0]])
    elif fault == "empty":
        spec.append([])
    else:
        spec[0] = [feature_names[c] for c in spec[0]] + ["no_such_column"]
    try:
        resolve_blocks(spec, n_features, feature_names)
    except ValueError:
        return
    raise AssertionError(f"{spec!r} was accepted")


junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 30)
    | st.floats(allow_nan=True)
    | st.text(max_size=6)
    | st.builds(
        slice, st.integers(-30, 30) | st.none(), st.integers(-30, 30) | st.none()
    ),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=4) | st.integers(), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(junk, st.integers(1, 12))
def test_any_input_resolves_to_valid_blocks_or_raises_value_error(spec, n_features):
    feature_names = [f"m{j % 3}__{j}" for j in range(n_features)]
    try:
        indices, names = resolve_blocks(spec, n_features, feature_names)
    except ValueError:
        return
    seen = np.concatenate(indices)
    assert all(len(i) > 0 for i in indices)
    assert len(np.unique(seen)) == len(seen)
    assert seen.min() >= 0 and seen.max() < n_features
    assert len(names) == len(indices) == len(set(names))
