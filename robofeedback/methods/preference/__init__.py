"""PEBBLE: a reward learned online from pairwise preferences between segments (Lee, Smith & Abbeel 2021).

For a labelled pair of segments (sigma^0, sigma^1) with y = P(sigma^1 preferred), each ensemble member's
reward r_psi gives the Bradley-Terry probability

    P_psi[sigma^1 > sigma^0] = exp sum_t r_psi(s^1_t, a^1_t) / sum_{i in {0,1}} exp sum_t r_psi(s^i_t, a^i_t)

and learns by minimising the cross-entropy with y; queries are the candidate pairs the ensemble disagrees on
most, and the off-policy replay buffer is relabelled with r_psi after every update. The model is the preference
core (:mod:`robofeedback.rewards.preference`) and the loop :class:`~robofeedback.rl.feedback_loop.FeedbackLoop`,
which VARP and HERON build on too; this package registers PEBBLE as ``train(reward="preference")`` and runs its
bench entries.
"""

from robofeedback.methods.preference.bench import report, run_entry
from robofeedback.protocols import FeedbackSource
from robofeedback.registry import Method
from robofeedback.rewards.preference import PreferenceReward

METHOD = Method(
    name="preference",
    label="PEBBLE preferences",
    summary="PEBBLE: a reward ensemble learned from pairwise preferences (a teacher, a judge or people)",
    model=PreferenceReward,
    feedback=FeedbackSource,
    bench=run_entry,
    report=report,
)
