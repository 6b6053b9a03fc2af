"""goal_distance: a worked example of a reward method that lives outside robofeedback and registers through an
entry point (the tests install it; docs/adding-a-method.md walks through it).

The reward is shaped by hand, not learned: with d(s') the env's distance factor after the step (panda reach's
``ee_to_target``, the gripper's distance to the goal) and c the weight of the action penalty,

    r(s, a, s') = -d(s') - c ||a||^2
"""

from robofeedback.registry import Method
from robofeedback_example.bench import report, run_entry
from robofeedback_example.cli import add_arguments, from_args
from robofeedback_example.reward import build

METHOD = Method(
    name="goal_distance",
    label="goal distance (example)",
    summary="goal_distance: minus the env's distance to the goal, minus an optional action penalty (no feedback)",
    build=build,
    add_arguments=add_arguments,
    from_args=from_args,
    bench=run_entry,
    report=report,
)
