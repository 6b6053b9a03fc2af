"""VARP: preference labels from a vision-language judge on trajectory sketches, and a reward model regularized by
the agent's own performance (Singh, Bhaskar, Yu et al. 2025).

The judge labels pairs by the final frame of each segment with the path drawn on it; the reward model adds to
PEBBLE's Bradley-Terry loss a term on the current policy's recent transitions, weighted by lambda:

    L(psi) = L_BT(psi; D_judge) + lambda * L_agent(psi),   L_agent(psi) = -E_{(s,a) ~ pi_current} [ r_psi(s, a) ]

(:class:`~robofeedback.methods.varp.model.AgentRegularizedReward`; ``preference: {agent_reg: lambda}``).
"""

from robofeedback.methods.varp.bench import report, run_entry
from robofeedback.methods.varp.cli import add_arguments, from_args
from robofeedback.methods.varp.model import AgentRegularizedReward
from robofeedback.protocols import FeedbackSource
from robofeedback.registry import Method

METHOD = Method(
    name="varp",
    label="VARP (CLIP judge)",
    summary="VARP: agent-regularized preferences, usually from a vision-language judge on trajectory sketches",
    model=AgentRegularizedReward,
    feedback=FeedbackSource,
    add_arguments=add_arguments,
    from_args=from_args,
    bench=run_entry,
    report=report,
)
