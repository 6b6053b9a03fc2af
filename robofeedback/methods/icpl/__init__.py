"""ICPL: an LLM writes reward functions, policies are trained on each, a person ranks their videos, and the LLM
refines the rewards from that ranking (Yu et al. 2024, In-Context Preference Learning).

Each iteration proposes K candidate reward functions R_1..R_K given the task, the env and the previous best and
worst with the ranker's note; a policy is trained on each, and the ranking of their videos (best, worst) is the
only feedback (:class:`~robofeedback.methods.icpl.model.ICPL`).
"""

from robofeedback.methods.icpl.bench import report, run_entry
from robofeedback.methods.icpl.cli import add_parser
from robofeedback.registry import Method

METHOD = Method(
    name="icpl",
    label="ICPL",
    summary="ICPL: an LLM writes reward code, a person or a judge ranks the trained policies' videos",
    add_commands=add_parser,
    bench=run_entry,
    report=report,
)
