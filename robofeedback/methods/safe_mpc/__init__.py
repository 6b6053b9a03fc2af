"""Safe MPC from directional feedback: a person nudges the robot away from danger, and each nudge cuts the
hypothesis space of the safety constraint (Xie et al. 2024).

The constraint is g_theta(x) = theta . phi(x) <= 0 with theta in a box Theta_0; a correction a at x^t says
<a, grad_u J(theta)> < 0, a half-space that cuts the current hypothesis set. The learner keeps the
maximum-volume inscribed ellipsoid's centre as theta, which certifies convergence within K corrections, or
declares that Theta_0 cannot hold the true constraint (:mod:`robofeedback.safety`).
"""

from robofeedback.methods.safe_mpc.bench import report, run_entry
from robofeedback.methods.safe_mpc.cli import add_parser
from robofeedback.registry import Method

METHOD = Method(
    name="safe_mpc",
    label="safe MPC",
    summary="safe MPC: a constraint learned from directional corrections with cutting planes",
    add_commands=add_parser,
    bench=run_entry,
    report=report,
)
