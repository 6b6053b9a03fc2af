"""Safe MPC from directional feedback: a person nudges the robot away from danger, and each nudge cuts the
hypothesis space of the safety constraint (Xie et al. 2024, arXiv 2407.04216).

The robot plans with a barrier MPC under its guess theta of the constraint (:mod:`.mpc`):

    min_u  B(u; theta) = J(u) - gamma * log(-g_theta(xi)),      g_theta(xi) = phi_0(xi) + theta^T phi(xi),

theta in a box Theta_0. A correction a of the first control (a_bar = [a; 0; ...; 0]) says
<a_bar, grad_u B(u; theta_H)> < 0, the cut h^T theta < b (:mod:`.cutting_plane`) with

    h = -(a_bar^T grad_u J) phi(xi) + gamma (d phi / du) a_bar,
    b = (a_bar^T grad_u J) phi_0(xi) - gamma (d phi_0 / du)^T a_bar.

The next theta is the centre of the maximum-volume ellipsoid inside what remains, so at most
K = ln(Vol Theta_0 / V_min) / -ln(1 - 1/r) corrections come, or the learner declares that Theta_0 cannot hold the
true constraint. :mod:`.alignment` runs the loop with a simulated, terminal or app human on the games of
:mod:`.games`, which this package registers as the env family ``safety`` (``envs.make("safety:pendulum")``).
"""

from robofeedback.envs import register_family
from robofeedback.methods.safe_mpc.bench import report, run_entry
from robofeedback.methods.safe_mpc.cli import add_parser
from robofeedback.methods.safe_mpc.games import SafetyEnv, game_names
from robofeedback.registry import Method

register_family(
    "safety", SafetyEnv, game_names, "safety", "safety games with a hidden constraint (pendulum, drone, PyBullet arm)"
)

METHOD = Method(
    name="safe_mpc",
    label="safe MPC",
    summary="safe MPC: a constraint learned from directional corrections with cutting planes",
    add_commands=add_parser,
    bench=run_entry,
    trains_policies=False,
    report=report,
)
