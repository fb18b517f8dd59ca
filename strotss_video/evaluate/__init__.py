"""Measure a stylised video against its input (the ``strotss-video evaluate`` command).

``plan`` checks the files and matches frames by time without torch; ``run`` decodes the
matched frames once and measures them; ``distances`` holds the style and content distances;
``report`` the result with its JSON and table; ``plot`` the per-frame PNG. Submodules import
lazily, so ``plan`` stays free of torch."""

from __future__ import annotations

from typing import Any

__all__ = ["Evaluation", "EvaluationPlan", "evaluate_video", "plan_evaluation", "run_evaluation"]

_HOMES = {"Evaluation": "report", "EvaluationPlan": "plan", "plan_evaluation": "plan",
          "evaluate_video": "run", "run_evaluation": "run"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        from importlib import import_module

        return getattr(import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(name)
