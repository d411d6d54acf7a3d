"""The LLM judge: metric families scored by a language model (OpenAI-compatible endpoint or a local model).

Importing this package loads the prompt files and registers every judged field in the metric registry
(family "judge"), as analysis/metrics.py does for the computed metrics.
"""

from analysis.judge.families import Family, ReplyError, load_families, select_families
from analysis.judge.store import (
           judged_frame,
           judged_path,
           merge_judged,
           register_families,
)

FAMILIES = load_families()
register_families(FAMILIES)

__all__ = ["FAMILIES", "Family", "ReplyError", "judged_frame", "judged_path", "load_families", "merge_judged",
           "select_families"]
