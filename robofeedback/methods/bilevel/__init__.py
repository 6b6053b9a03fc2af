"""Bi-level video reward learning: a VLM compares the learner's video with an expert's (upper level) and an LLM
turns that feedback into the next reward (lower level).

    upper level:  min_R  L(xi(pi*_R), V_expert)              how far the learner's motion xi is from the video
    lower level:  pi*_R = argmax_pi  E_pi[ sum_t R(s_t, a_t) ]   the policy that the reward code R teaches

Each iteration trains a policy on the current reward R_k, records its video, and the judge scores it against the
expert video (a similarity and feedback in words); the lower level writes R_{k+1} from that record
(:class:`~robofeedback.methods.bilevel.model.BilevelVideoReward`).
"""

from robofeedback.methods.bilevel.bench import report, run_entry
from robofeedback.methods.bilevel.cli import add_parser
from robofeedback.registry import Method

METHOD = Method(
    name="bilevel",
    label="bi-level video",
    summary="bi-level video rewards: a VLM compares the learner's video with an expert's, an LLM updates the reward",
    add_commands=add_parser,
    bench=run_entry,
    report=report,
)
