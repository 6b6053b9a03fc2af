"""HERON: a reward learned from a person's ranking of the task's reward factors (Bukharin et al. 2023).

Items A and B are compared by the decision tree the ranking z_1 > z_2 > ... > z_n (signs s_l) induces: at level
l, A is preferred if s_l z_l(A) > s_l z_l(B) + sigma_l std(z_l), B if the reverse, and otherwise the comparison
goes to level l + 1. PEBBLE's Bradley-Terry ensemble learns a reward from these labels
(:class:`~robofeedback.methods.heron.model.HierarchicalJudge` labels them), with HERON's network and cadence.
"""

from robofeedback.methods.heron.bench import report, run_entry
from robofeedback.methods.heron.cli import add_arguments, from_args
from robofeedback.methods.heron.model import MODEL_DEFAULTS, HierarchicalJudge, loop_defaults
from robofeedback.registry import Method
from robofeedback.rewards.preference import PreferenceReward


def configure(cfg):
    """HERON's network and retraining cadence, under whatever the config sets."""
    cfg.feedback = {**loop_defaults(cfg), **cfg.feedback}
    cfg.preference = {**MODEL_DEFAULTS, **cfg.preference}
    return cfg


METHOD = Method(
    name="heron",
    label="HERON",
    summary="HERON: preferences decided by a ranking of the task's reward factors",
    model=PreferenceReward,
    feedback=HierarchicalJudge,
    configure=configure,
    add_arguments=add_arguments,
    from_args=from_args,
    bench=run_entry,
    report=report,
)
