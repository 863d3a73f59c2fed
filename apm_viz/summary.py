"""The arithmetic of an evaluation: top-1 per corruption, with n and 95% intervals.

Intervals are Wilson score intervals (z = 1.96) of a binomial proportion:
they stay inside [0, 1] and behave at small n and near 0 or 1, where the
normal approximation does not. The paired counts (images only the APM gets
right, only CLIP gets right) come with an exact two-sided McNemar (sign) test.
Table 2's "Avg." is the mean of the per-corruption accuracies; the same images
appear under every corruption, so the columns are not independent and no
interval is given for it.
"""

from __future__ import annotations

import math
from typing import Iterable, Optional

from .corruptions import CLEAN, CORRUPTIONS, TITLES

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of k successes in n trials; (0, 1) when n == 0."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value: b, c the discordant pairs (binomial(b + c, 1/2))."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def _cell(k: int, n: int) -> dict:
    lo, hi = wilson(k, n)
    return {"correct": k, "n": n, "top1": (k / n) if n else None, "ci95": [lo, hi]}


def summarize(rows: Iterable[dict]) -> dict:
    """Per (corruption, severity): n, errors, and for "teacher" (CLIP zero-shot) and "apm"
    the correct count, top-1, its Wilson interval; top-5; paired counts. Rows without a
    prediction (an "error" key) count as errors, not in n."""
    groups: dict[tuple[str, int], dict] = {}
    for r in rows:
        key = (r["corruption"], int(r["severity"]))
        g = groups.setdefault(key, {"n": 0, "errors": 0, "teacher": 0, "apm": 0, "teacher_top5": 0, "apm_top5": 0,
                                    "only_apm": 0, "only_teacher": 0, "changed": 0})
        if "error" in r:
            g["errors"] += 1
            continue
        t, a = bool(r["teacher_correct"]), bool(r["apm_correct"])
        g["n"] += 1
        g["teacher"] += t
        g["apm"] += a
        g["teacher_top5"] += int(r["label_index"] in r["teacher_top5"])
        g["apm_top5"] += int(r["label_index"] in r["apm_top5"])
        g["only_apm"] += int(a and not t)
        g["only_teacher"] += int(t and not a)
        g["changed"] += int(r["apm_top1"] != r["teacher_top1"])
    order = (CLEAN, *CORRUPTIONS)
    cells = []
    for (c, s), g in sorted(groups.items(), key=lambda kv: (kv[0][1], order.index(kv[0][0]))):
        n = g["n"]
        cells.append({
            "corruption": c, "severity": s, "n": n, "errors": g["errors"],
            "teacher": _cell(g["teacher"], n), "apm": _cell(g["apm"], n),
            "teacher_top5": g["teacher_top5"] / n if n else None, "apm_top5": g["apm_top5"] / n if n else None,
            "only_apm": g["only_apm"], "only_teacher": g["only_teacher"], "changed": g["changed"],
            "mcnemar_p": mcnemar_p(g["only_apm"], g["only_teacher"]),
        })
    tables = []
    for s in sorted({c["severity"] for c in cells}):
        row = [c for c in cells if c["severity"] == s]
        corrupted = [c for c in row if c["corruption"] != CLEAN and c["n"]]
        avg = {m: (sum(c[m]["top1"] for c in corrupted) / len(corrupted)) if corrupted else None
               for m in ("teacher", "apm")}
        tables.append({"severity": s, "columns": [c["corruption"] for c in row], "average": avg,
                       "average_over": len(corrupted)})
    return {"interval": "Wilson score, 95%", "cells": cells, "tables": tables,
            "rows": sum(c["n"] + c["errors"] for c in cells), "errors": sum(c["errors"] for c in cells)}


def _pct(x: Optional[float]) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def markdown(summary: dict, title: str = "Top-1 accuracy (%)", methods: tuple[str, str] = ("CLIP zero-shot",
                                                                                          "APM (TTT)")) -> str:
    """Table 2's layout (methods as rows, corruptions as columns, Avg. last), one table per
    severity, then every cell with n, interval and the paired counts."""
    lines = [f"# {title}", "", f"Intervals: {summary['interval']}. Avg.: mean over the corruption columns; "
             "no interval (the same images appear in every column).", ""]
    by_key = {(c["corruption"], c["severity"]): c for c in summary["cells"]}
    for t in summary["tables"]:
        s = t["severity"]
        cols = t["columns"]
        heading = "clean" if cols == [CLEAN] else f"severity {s}"
        lines += [f"## {heading}", ""]
        avg = t["average_over"] > 0
        head = ["Method", *[TITLES[c] for c in cols], *(["Avg."] if avg else [])]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for name, m in zip(methods, ("teacher", "apm")):
            vals = [_pct(by_key[(c, s)][m]["top1"]) for c in cols]
            lines.append("| " + " | ".join([name, *vals, *([_pct(t["average"][m])] if avg else [])]) + " |")
        lines.append("| n | " + " | ".join(str(by_key[(c, s)]["n"]) for c in cols) + (" | " if avg else "") +
                     (f"{t['average_over']} columns" if avg else "") + " |")
        lines.append("")
    lines += ["## Every cell", "",
              "| corruption | severity | n | errors | CLIP top-1 [95% CI] | APM top-1 [95% CI] | only APM right | "
              "only CLIP right | McNemar p | top-1 changed by TTT |", "|---|---|---|---|---|---|---|---|---|---|"]
    for c in summary["cells"]:
        ci = {m: f"{_pct(c[m]['top1'])} [{_pct(c[m]['ci95'][0])}, {_pct(c[m]['ci95'][1])}]" for m in ("teacher", "apm")}
        lines.append(f"| {c['corruption']} | {c['severity'] or '–'} | {c['n']} | {c['errors']} | {ci['teacher']} | "
                     f"{ci['apm']} | {c['only_apm']} | {c['only_teacher']} | {c['mcnemar_p']:.3g} | {c['changed']} |")
    return "\n".join(lines) + "\n"
