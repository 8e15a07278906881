"""Warnings that point at the user's line, not at a library's."""

import sys
import warnings

__all__ = ["warn_user"]

# Packages whose frames a warning of mmfuse passes over: mmfuse itself and the
# libraries that call back into it (skorch's fit loop, scikit-learn's meta
# estimators, joblib, torch).
_LIBRARIES = frozenset({"mmfuse", "skorch", "sklearn", "joblib", "torch"})


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """Issue a warning attributed to the first caller outside the libraries.

    Parameters
    ----------
    message : str
        The warning's text.
    category : type of Warning, default=UserWarning
        Its category.
    """
    frame, level = sys._getframe(1), 2
    while frame is not None and (
        frame.f_globals.get("__name__", "").partition(".")[0] in _LIBRARIES
    ):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
