"""VLM-RM: the CLIP similarity between a rendered frame and a language goal as the reward (Rocamonde et al. 2023).

With the goal prompt's embedding g, the baseline prompt's b and a frame's x (each normalised),

    R_CLIP-Reg(s) = 1 - 1/2 || alpha proj_L x + (1 - alpha) x - g ||^2,   L the line through b and g

so alpha = 0 is the plain cosine similarity and alpha = 1 keeps only the goal-baseline direction
(:class:`~robofeedback.methods.clip.model.ClipReward`; the similarity itself is
:class:`~robofeedback.feedback.clip_model.GoalSimilarity`, which the CLIP judges share). Its bench section trains
SAC on the reward and studies the reward's speed and quality (``robofeedback bench --suite clip``).
"""

from robofeedback.methods.clip.bench import report, run_entry
from robofeedback.methods.clip.cli import add_arguments, from_args
from robofeedback.registry import Method

METHOD = Method(
    name="clip",
    label="VLM-RM (mini CLIP)",
    summary="VLM-RM: CLIP similarity between the rendered frame and a language goal",
    add_arguments=add_arguments,
    from_args=from_args,
    bench=run_entry,
    report=report,
)
