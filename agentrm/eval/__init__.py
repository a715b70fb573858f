"""Evaluation of reward-model runs against human preferences (`agentrm eval`).

- `metrics` — pure functions: accuracy with / without ties (Ties Matter, Alg. 1), verdict accuracy,
  verdict-vs-margin agreement, bootstrap CIs, pointwise correlations.
- `runs` — traces JSONL / other models' scores CSV -> light `Episode` records joined with labels.
- `report` — `evaluate(...)` -> `EvalReport` (see `schema`: report.json); `write_report` (+ .md, PNGs).

Plots import matplotlib only when written; importing this package stays light.
"""

from agentrm.eval.metrics import (
    NO_ANSWER,
    accuracy_with_ties,
    accuracy_without_ties,
    agreement,
    bootstrap_ci,
    bootstrap_ci_with_ties,
    verdict_accuracy,
)
from agentrm.eval.report import build_report, evaluate, write_report
from agentrm.eval.runs import Episode, Run, load_scores_run, load_trace_run
from agentrm.eval.schema import EvalReport, EvalSettings

__all__ = [
    "NO_ANSWER",
    "Episode",
    "EvalReport",
    "EvalSettings",
    "Run",
    "accuracy_with_ties",
    "accuracy_without_ties",
    "agreement",
    "bootstrap_ci",
    "bootstrap_ci_with_ties",
    "build_report",
    "evaluate",
    "load_scores_run",
    "load_trace_run",
    "verdict_accuracy",
    "write_report",
]
