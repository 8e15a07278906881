"""The contract of every public estimator, fuzzed (issue 14).

Whatever :func:`contract_catalogue.cases` draws (blocks specs, shapes, dtypes,
NaN patterns, extreme scales, targets, bad hyperparameters), an estimator
either fits and returns finite outputs of the documented shape, or raises
``ValueError``/``TypeError``/``NotFittedError`` whose message names what is at
fault; no numpy RuntimeWarning, and no warning from numpy, scipy, torch,
skorch or pandas internals, reaches the user. ``contract_catalogue``'s docstring defines
each part; estimators are discovered, so one added later is covered (its
small-data settings come from ``tests/test_common.py``'s ``PARAMS``).

Run as a script, it collects every violation instead of stopping at the first
and prints them as a table, one row per estimator and kind of violation, or
(``--messages``) runs the catalogue's hand-picked bad inputs and prints the
exact message each gives::

    PYTHONPATH=$PWD python tests/test_contract.py --report [--examples 200]
    PYTHONPATH=$PWD python tests/test_contract.py --messages
"""

import argparse
import re
from collections import defaultdict
from importlib.util import find_spec

import pytest
from contract_catalogue import (
    ESTIMATORS,
    bad_input_outcomes,
    cases,
    contract_violation,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

# Derandomized, so that CI draws the same cases on every run. too_slow: an
# example fits a model (the first torch fit takes a second or more).
SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow],
}


def check_contract(name, data):
    case = data.draw(cases(name), label="case")
    violation = contract_violation(case)
    assert violation is None, f"{violation}\n{case.code()}"


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@settings(max_examples=40, **SETTINGS)
@given(data=st.data())
def test_contract(name, data):
    check_contract(name, data)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@settings(max_examples=400, **SETTINGS)
@given(data=st.data())
def test_contract_slow(name, data):
    check_contract(name, data)


# ------------------------------------------------------------------- report
def _signature(violation):
    """A violation without its suspects, numbers and quoted names, for grouping."""
    violation = re.sub(r"names none of \[.*?\]: ", "names none of [...]: ", violation)
    return re.sub(r"'[^']*'|\d+(\.\d+)?(e[+-]?\d+)?", "_", violation)


def collect(name, examples):
    """{signature: [count, shortest case code, violation]} over ``examples`` draws."""
    found = {}

    @settings(max_examples=examples, phases=[Phase.generate], **SETTINGS)
    @given(data=st.data())
    def run(data):
        case = data.draw(cases(name))
        violation = contract_violation(case)
        if violation is None:
            return
        entry = found.setdefault(_signature(violation), [0, None, violation])
        entry[0] += 1
        code = case.code()
        if entry[1] is None or len(code) < len(entry[1]):
            entry[1], entry[2] = code, violation

    run()
    return found


def report(names, examples):
    if find_spec("torch") is not None:  # tiny nets: one thread, as in conftest.py
        import torch

        torch.set_num_threads(1)
    print(f"Contract violations, {examples} drawn cases per estimator.")
    print("Reproduce: PYTHONPATH=$PWD:$PWD/tests python -c")
    print("  'from contract_catalogue import *; <input>; est.fit(X, y); ...'")
    print("(est.fit(X, y, sample_weight=w) where the input makes w)\n")
    print("| estimator | cases | what happened | drawn input |")
    print("|---|---|---|---|")
    totals = defaultdict(int)
    for name in names:
        found = collect(name, examples)
        for count, code, violation in sorted(found.values(), key=lambda e: -e[0]):
            totals[name] += count
            cell = violation.replace("|", "\\|")
            print(f"| {name} | {count} | {cell} | `{code}` |", flush=True)
    print()
    for name in names:
        print(f"{name}: {totals[name]} of {examples} cases break the contract")


def messages():
    print("| input | verdict | what happened |")
    print("|---|---|---|")
    for code, verdict, outcome in bad_input_outcomes():
        cells = [c.replace("|", "\\|") for c in (code, verdict, outcome)]
        print(f"| `{cells[0]}` | {cells[1]} | {cells[2]} |", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="fuzz, list violations")
    parser.add_argument("--messages", action="store_true", help="the bad-input list")
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--estimators", nargs="*", default=sorted(ESTIMATORS))
    args = parser.parse_args()
    if args.messages:
        messages()
    if args.report or not args.messages:
        report(args.estimators, args.examples)
