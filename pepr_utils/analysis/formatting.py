"""Numbers in words: how the report's sentences and the figures' labels write values, p-values and sizes."""

from __future__ import annotations

import numpy as np


def fmt(x, digits: int = 3) -> str:
    """A number for a sentence: ``digits`` significant digits, thousands separated, '–' when missing."""
    if x is None or (isinstance(x, (float, np.floating)) and not np.isfinite(x)):
        return "–"
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    x = float(x)
    if x == 0:
        return "0"
    if abs(x) >= 10 ** digits:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def fmt_p(p) -> str:
    """``p = 0.012``, ``p < 0.001`` or ``p = n/a``: a p-value as the report and its figures write it."""
    if p is None or not np.isfinite(p):
        return "p = n/a"
    return "p < 0.001" if p < 1e-3 else f"p = {p:.3f}"


def fmt_params(n) -> str:
    """1.2M, 86M, 1.1B or 45k parameters."""
    if n is None or not np.isfinite(n):
        return "? parameters"
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            v = n / scale
            return f"{v:.2g}{unit} parameters" if v < 10 else f"{v:,.0f}{unit} parameters"
    return f"{int(n)} parameters"


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 run``, ``2 runs``."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def energy_split(facts: dict) -> str | None:
    """``"GPU metered; CPU, RAM estimated"`` when part of a study's energy was metered and part estimated
    (facts: :func:`pepr_utils.analysis.results.study_facts`), else None: all metered or all estimated."""
    metered, estimated = facts.get("energy_metered_parts") or [], facts.get("energy_estimated_parts") or []
    if not (metered and estimated):
        return None

    def names(parts: list[str]) -> str:
        return ", ".join(p.upper() if p in ("cpu", "gpu", "ram") else p for p in parts)

    return f"{names(metered)} metered; {names(estimated)} estimated"
