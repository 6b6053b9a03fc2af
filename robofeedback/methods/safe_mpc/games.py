"""Safety games (``safety:<game>``, the env family this method registers): tasks with a hidden safety constraint, for
safe MPC from directional feedback.

Each game is a Gymnasium env with a known model (its dynamics, a task cost, and the family of constraint
features the learner may use) and a hidden true constraint in that family: a state x is unsafe when

    c_H(x) = c_0 + theta_H^T psi(x) > 0

(the region drawn red, which the simulated human keeps the plan out of); the robot fails (a violation)
when it goes deeper than the game's ``margin``, c_H(x) > margin, as a person correcting a robot keeps a
margin, with psi the game's features (radial basis functions over position, or polynomials of the state) and c_0 a
constant bias. The plan-level constraint an MPC keeps is linear in the same parameters,
g_theta(xi) = phi_0(xi) + theta^T phi(xi), with phi(xi) = sum_k w_k psi(x_k) over chosen predicted steps
(and phi_0 = c_0 sum_k w_k). A step into an unsafe state ends the episode as a violation.

- ``safety:pendulum``: swing a torque-limited pendulum up with a hidden limit on angle and speed (the small
  exact case; r = 2).
- ``safety:drone``: fly a point-mass drone (double integrator in the plane) through the gap of a wall to the
  goal (r = 20 RBFs around the wall).
- ``safety:arm``: move a PyBullet Franka Panda's gripper to a goal past an obstacle region (end-effector
  kinematics; r = 20 RBFs around the obstacle).

``misspecified=True`` makes the variant whose true constraint lies outside the hypothesis space: the box of
parameters the learner searches (``theta_box``) excludes theta_H.

The model is written once for numpy and CasADi (``ops`` is :data:`NUMPY` or the MPC's CasADi namespace), so
the env's simulation and the MPC's prediction are the same equations.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robofeedback.envs.base import CTRL_COST, FactorInfo, RobotEnv, _parse_size, ctrl_cost, quiet_native_output
from robofeedback.envs.camera import Camera
from robofeedback.envs.pybullet_view import orbit_camera, render_pybullet


class _NumpyOps:
    """The operations the models use, on numpy values (the MPC passes a CasADi namespace with the same names)."""

    exp, sin, cos, sqrt = staticmethod(np.exp), staticmethod(np.sin), staticmethod(np.cos), staticmethod(np.sqrt)

    @staticmethod
    def vertcat(*items):
        return np.array([np.asarray(item, dtype=np.float64).reshape(()) for item in items])


NUMPY = _NumpyOps()


# -- constraint features ----------------------------------------------------------------------------------


class StateFeatures:
    """The per-state features psi(x) of a constraint family and its bias c_0: c(x) = c_0 + theta^T psi(x).

    Subclasses give ``r`` and ``psi(x, ops) -> list of r expressions``; :meth:`plan` sums them over the
    predicted steps ``steps`` (1 = the first predicted state) with weights ``discount ** (k - steps[0])``.
    User-supplied features subclass this (or pass any object with ``r``, ``bias``, ``psi`` and ``plan``).
    """

    r: int = 0
    bias: float = -1.0
    steps: tuple[int, ...] = (1,)
    discount: float = 1.0

    def psi(self, x, ops=NUMPY) -> list:
        raise NotImplementedError(f"{type(self).__name__} does not define psi()")

    def value(self, x, theta: np.ndarray) -> float:
        """c(x) = c_0 + theta^T psi(x) for one numpy state (positive: unsafe under theta)."""
        return float(self.bias + np.dot(theta, self.psi(np.asarray(x, dtype=np.float64))))

    def weights(self, horizon: int) -> list[tuple[int, float]]:
        steps = [k for k in self.steps if 1 <= k <= horizon] or [horizon]
        return [(k, self.discount ** (k - steps[0])) for k in steps]

    def plan(self, states: list, ops=NUMPY) -> tuple[Any, list]:
        """(phi_0, phi) of a plan whose predicted states are ``states[0..N]`` (``states[0]`` is x_0)."""
        horizon = len(states) - 1
        phi0, phi = 0.0, [0.0] * self.r
        for k, w in self.weights(horizon):
            psi = self.psi(states[k], ops)
            phi0 = phi0 + w * self.bias
            phi = [p + w * q for p, q in zip(phi, psi, strict=True)]
        return phi0, phi


@dataclass
class RBFFeatures(StateFeatures):
    """Gaussian radial basis functions over position: psi_j(x) = exp(-|x[position] - c_j|^2 / (2 width^2))."""

    centers: np.ndarray = field(default_factory=lambda: np.zeros((1, 2)))
    width: float = 0.5
    position: tuple[int, ...] = (0, 1)
    bias: float = -1.0
    steps: tuple[int, ...] = (1,)
    discount: float = 1.0

    def __post_init__(self) -> None:
        self.centers = np.atleast_2d(np.asarray(self.centers, dtype=np.float64))
        if self.centers.shape[1] != len(self.position):
            raise ValueError(f"centers have {self.centers.shape[1]} coordinates, position names {len(self.position)}")
        if not self.width > 0:
            raise ValueError(f"width must be > 0, got {self.width}")
        self.r = len(self.centers)

    def psi(self, x, ops=NUMPY) -> list:
        out = []
        for c in self.centers:
            d2 = sum((x[i] - float(ci)) ** 2 for i, ci in zip(self.position, c, strict=True))
            out.append(ops.exp(-d2 / (2.0 * self.width**2)))
        return out


@dataclass
class PolynomialFeatures(StateFeatures):
    """Monomials of the state entries ``index`` up to ``degree`` (degree 1: the entries themselves)."""

    index: tuple[int, ...] = (0, 1)
    degree: int = 1
    bias: float = -1.0
    steps: tuple[int, ...] = (1,)
    discount: float = 1.0

    def __post_init__(self) -> None:
        if self.degree < 1:
            raise ValueError(f"degree must be >= 1, got {self.degree}")
        self.terms = [
            combo for d in range(1, self.degree + 1) for combo in itertools.combinations_with_replacement(self.index, d)
        ]
        self.r = len(self.terms)

    def psi(self, x, ops=NUMPY) -> list:
        out = []
        for combo in self.terms:
            term = 1.0
            for i in combo:
                term = term * x[i]
            out.append(term)
        return out


def fit_rbf_weights(features: RBFFeatures, unsafe, low, high, bias: float, resolution: int = 60) -> np.ndarray:
    """RBF weights theta whose constraint c_0 + theta^T psi(x) is about +1 where ``unsafe(p)`` holds and -1 elsewhere
    (least squares on a grid over the box ``low``..``high`` of positions), so the hidden constraint is in the family."""
    axes = [np.linspace(lo, hi, resolution) for lo, hi in zip(low, high, strict=True)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(low))
    distances = ((grid[:, None, :] - features.centers[None]) ** 2).sum(-1)
    rows = np.exp(-distances / (2.0 * features.width**2))
    targets = np.array([1.0 if unsafe(p) else -1.0 for p in grid]) - bias
    theta, *_ = np.linalg.lstsq(rows, targets, rcond=None)
    return theta


# -- the games ---------------------------------------------------------------------------------------------


@dataclass
class GameModel:
    """What the MPC and the learner know about a game: dynamics, task cost, features, and the parameter box."""

    n_x: int
    n_u: int
    dt: float
    u_low: np.ndarray
    u_high: np.ndarray
    features: StateFeatures
    theta_box: tuple[np.ndarray, np.ndarray]
    horizon: int
    gamma: float
    dynamics: Any  # (x, u, ops) -> next x
    stage_cost: Any  # (x, u, goal, ops) -> float
    terminal_cost: Any  # (x, goal, ops) -> float
    epsilon: float = 0.05  # radius of the ball around theta_H that corrections are assumed never to cut (V_min)


class SafetyGame(gym.Env):
    """Base of the safety games: known model, hidden theta_H, a goal, violation and success checks."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    name = "game"
    margin = 0.2  # a violation is c_H(x) > margin

    def __init__(self, misspecified: bool = False, max_steps: int = 100, render_size: tuple[int, int] = (224, 224)):
        self.misspecified = bool(misspecified)
        self.max_steps = max_steps
        self.width, self.height = render_size
        self.model = self.make_model()
        self.theta_true = self.true_theta()
        low, high = self.model.theta_box
        if self.misspecified:
            self.model.theta_box = self.misspecified_box()
            low, high = self.model.theta_box
            if np.all((self.theta_true >= low) & (self.theta_true <= high)):
                raise AssertionError(f"{self.name}: the misspecified box must exclude theta_H")
        elif not np.all((self.theta_true >= low) & (self.theta_true <= high)):
            raise AssertionError(f"{self.name}: theta_H must lie in the hypothesis box")
        m = self.model
        self.action_space = spaces.Box(m.u_low.astype(np.float32), m.u_high.astype(np.float32))
        self.observation_space = spaces.Box(-np.inf, np.inf, (m.n_x,), np.float32)
        self.plan: np.ndarray | None = None  # the MPC's predicted states, drawn by render()
        self.state = np.zeros(m.n_x)
        self.goal = np.zeros(m.n_x)
        self.steps = 0

    # what a game defines
    def make_model(self) -> GameModel:
        raise NotImplementedError

    def true_theta(self) -> np.ndarray:
        raise NotImplementedError

    def misspecified_box(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def sample_start(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    goal_radius = 0.1  # at the goal: goal_distance(x) < goal_radius (and, for the pendulum, slow enough)

    def goal_distance(self, x: np.ndarray) -> float:
        raise NotImplementedError

    def at_goal(self, x: np.ndarray) -> bool:
        return self.goal_distance(x) < self.goal_radius

    def agent_position(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def draw(self) -> np.ndarray:
        raise NotImplementedError

    # the env
    def constraint(self, x: np.ndarray) -> float:
        """The true constraint c_H(x) (> 0: unsafe)."""
        return self.model.features.value(x, self.theta_true)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.state, self.goal = self.sample_start(self.np_random)
        self.steps, self.plan = 0, None
        return self.state.astype(np.float32), {"violation": False, "constraint": self.constraint(self.state)}

    def step(self, action):
        u = np.clip(np.asarray(action, dtype=np.float64), self.model.u_low, self.model.u_high)
        self.state = np.asarray(self.model.dynamics(self.state, u, NUMPY), dtype=np.float64)
        self.steps += 1
        c = self.constraint(self.state)
        violation, success = c > self.margin, self.at_goal(self.state)
        cost = float(self.model.stage_cost(self.state, u, self.goal, NUMPY))
        info = {"violation": bool(violation), "constraint": c, "goal_reached": bool(success), "task_cost": cost}
        terminated = bool(violation or success)
        return self.state.astype(np.float32), -cost, terminated, self.steps >= self.max_steps, info

    def render(self) -> np.ndarray:
        return self.draw()


class PendulumGame(SafetyGame):
    """Swing a pendulum (alpha = 0 hanging, pi upright) up to upright, with a hidden limit on angle and speed:
    unsafe when -3 + 0.6 alpha + 1.0 alpha_dot > 0 (the paper's pendulum, features [alpha, alpha_dot] at the first
    predicted step, Theta_0 = [-6, 2]^2)."""

    name = "pendulum"

    def make_model(self) -> GameModel:
        g, length, mass, damping, dt = 10.0, 1.0, 1.0, 0.1, 0.05

        def dynamics(x, u, ops):
            acc = (u[0] - damping * x[1] - mass * g * length * ops.sin(x[0])) / (mass * length**2)
            return ops.vertcat(x[0] + dt * x[1], x[1] + dt * acc)

        def stage(x, u, goal, ops):
            return (x[0] - goal[0]) ** 2 + 0.1 * x[1] ** 2 + 0.05 * u[0] ** 2

        def terminal(x, goal, ops):
            return 10.0 * (x[0] - goal[0]) ** 2 + x[1] ** 2

        features = PolynomialFeatures(index=(0, 1), degree=1, bias=-3.0, steps=(1,))
        box = (np.array([-6.0, -6.0]), np.array([2.0, 2.0]))
        return GameModel(
            2, 1, dt, np.array([-100.0]), np.array([100.0]), features, box, 20, 1.0, dynamics, stage, terminal, 3e-4
        )  # epsilon: the simulated human's cuts came within a ball of 0.003 in 1 of 20 well-specified trials run
        # until the robot needed no help (and of 0.01 in 4 of 20 stopped at the first success); none within 0.001

    def true_theta(self) -> np.ndarray:
        return np.array([0.6, 1.0])

    def misspecified_box(self):
        return np.array([-6.0, -6.0]), np.array([2.0, -1.0])  # every hypothesis says faster is safer

    def sample_start(self, rng):
        return np.array([rng.uniform(-0.2, 0.2), 0.0]), np.array([math.pi, 0.0])

    def goal_distance(self, x):
        return abs(float(x[0]) - math.pi)

    def at_goal(self, x):
        return super().at_goal(x) and abs(x[1]) < 0.5

    def agent_position(self, x):
        return np.array([math.sin(x[0]), -math.cos(x[0]), 0.0])  # the tip, in the drawing's plane (y up)

    def _layout(self) -> tuple[int, tuple[int, int], float]:
        half = self.width // 2
        return half, (half // 2, self.height // 2), 0.4 * min(half, self.height)

    def camera_for(self) -> Camera:
        """Projects the tip (``agent_position``) onto the pendulum drawn in the left half of the frame."""
        _, (cu, cv), length = self._layout()
        low = np.array([-(cu + 0.5) / length, -(self.height - cv - 0.5) / length])
        high = np.array([(self.width - cu - 0.5) / length, (cv + 0.5) / length])
        return top_down_camera(low, high, self.width, self.height)

    def draw(self) -> np.ndarray:
        """The pendulum on the left; on the right its phase plane with the unsafe region (red), the planned states
        (yellow) and the state (white)."""
        h, w = self.height, self.width
        img = np.full((h, w, 3), 30, np.uint8)
        half, centre, length = self._layout()
        tip = (round(centre[0] + length * math.sin(self.state[0])), round(centre[1] + length * math.cos(self.state[0])))
        cv2.line(img, centre, tip, (220, 220, 220), 3, cv2.LINE_AA)
        cv2.circle(img, tip, 6, (80, 160, 255), -1, cv2.LINE_AA)
        alphas, speeds = np.linspace(-1, 4.5, half), np.linspace(4, -4, h)
        a, s = np.meshgrid(alphas, speeds)
        unsafe = self.model.features.bias + self.theta_true[0] * a + self.theta_true[1] * s > 0
        panel = np.full((h, w - half, 3), 50, np.uint8)
        panel[unsafe[:, : w - half]] = (150, 40, 40)
        img[:, half:] = panel

        def to_px(alpha, speed):
            return (half + int((alpha + 1) / 5.5 * (w - half - 1)), int((4 - speed) / 8 * (h - 1)))

        if self.plan is not None:
            for x in self.plan:
                cv2.circle(img, to_px(*x[:2]), 2, (255, 220, 0), -1)
        cv2.circle(img, to_px(*self.state[:2]), 4, (255, 255, 255), -1)
        cv2.drawMarker(img, to_px(math.pi, 0.0), (0, 220, 0), cv2.MARKER_CROSS, 10, 2)
        return img


class DroneGame(SafetyGame):
    """Fly a point-mass drone (position, velocity; acceleration commands) from the left of a field through the gap of
    a wall to a goal on the right. The hidden constraint is 20 RBFs fitted to the wall with its gap."""

    name = "drone"
    field = (np.array([0.0, 0.0]), np.array([5.0, 4.0]))
    wall_x, gap = (2.3, 2.7), (1.5, 2.5)

    def make_model(self) -> GameModel:
        dt = 0.1

        def dynamics(x, u, ops):
            return ops.vertcat(
                x[0] + dt * x[2] + 0.5 * dt**2 * u[0],
                x[1] + dt * x[3] + 0.5 * dt**2 * u[1],
                x[2] + dt * u[0],
                x[3] + dt * u[1],
            )

        def stage(x, u, goal, ops):
            return (x[0] - goal[0]) ** 2 + (x[1] - goal[1]) ** 2 + 2.0 * (u[0] ** 2 + u[1] ** 2)

        def terminal(x, goal, ops):
            return 10.0 * ((x[0] - goal[0]) ** 2 + (x[1] - goal[1]) ** 2) + x[2] ** 2 + x[3] ** 2

        centers = np.array([(2.5, y) for y in np.linspace(0.1, 3.9, 20)])  # a column of RBFs along the wall
        features = RBFFeatures(centers=centers, width=0.25, position=(0, 1), bias=-0.1, steps=(1, 2, 3))
        box = (np.full(20, -15.0), np.full(20, 15.0))
        u = np.array([20.0, 20.0])
        return GameModel(4, 2, dt, -u, u, features, box, 15, 1.0, dynamics, stage, terminal)

    def unsafe_region(self, p) -> bool:
        return self.wall_x[0] <= p[0] <= self.wall_x[1] and not (self.gap[0] <= p[1] <= self.gap[1])

    def true_theta(self) -> np.ndarray:
        band = (np.array([self.wall_x[0], self.field[0][1]]), np.array([self.wall_x[1], self.field[1][1]]))
        return fit_rbf_weights(self.model.features, self.unsafe_region, *band, self.model.features.bias)  # the wall

    def misspecified_box(self):
        low, _ = self.model.theta_box
        return low, np.zeros_like(low)  # no hypothesis can raise a wall: all say the field is safe

    def sample_start(self, rng):
        # the goal is behind the gap and the start anywhere on the left, above or below the gap's height
        middle = sum(self.gap) / 2
        start = np.array([0.5, middle + rng.choice([-1, 1]) * rng.uniform(0.6, 1.6), 0.0, 0.0])
        return start, np.array([3.6, middle + rng.uniform(-0.3, 0.3), 0.0, 0.0])

    goal_radius = 0.2

    def goal_distance(self, x):
        return float(np.hypot(x[0] - self.goal[0], x[1] - self.goal[1]))

    def agent_position(self, x):
        return np.array([x[0], x[1], 0.0])

    def camera_for(self) -> Camera:
        return top_down_camera(*self.field, self.width, self.height)

    def draw(self) -> np.ndarray:
        """Top view: the true unsafe region (red), the wall outline, the goal (green), the plan (yellow), the drone."""
        cam = self.camera_for()
        h, w = self.height, self.width
        (x0, y0), (x1, y1) = self.field
        xs, ys = np.linspace(x0, x1, w)[::4], np.linspace(y1, y0, h)[::4]
        c = np.array([[self.constraint(np.array([x, y, 0, 0])) for x in xs] for y in ys])
        unsafe = cv2.resize((c > 0).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        img = np.full((h, w, 3), 235, np.uint8)
        img[unsafe] = (220, 90, 90)
        for corner_a, corner_b in (
            ((self.wall_x[0], y0), (self.wall_x[1], self.gap[0])),
            ((self.wall_x[0], self.gap[1]), (self.wall_x[1], y1)),
        ):
            (ua, va), _ = cam.project(np.array([*corner_a, 0.0]))
            (ub, vb), _ = cam.project(np.array([*corner_b, 0.0]))
            cv2.rectangle(img, (int(ua), int(va)), (int(ub), int(vb)), (90, 30, 30), 1)
        (gu, gv), _ = cam.project(np.array([self.goal[0], self.goal[1], 0.0]))
        cv2.circle(img, (int(gu), int(gv)), 6, (40, 170, 40), -1, cv2.LINE_AA)
        if self.plan is not None:
            uv, _ = cam.project(np.array([[p[0], p[1], 0.0] for p in self.plan]))
            for a, b in itertools.pairwise(uv):
                cv2.line(img, tuple(int(v) for v in a), tuple(int(v) for v in b), (230, 170, 0), 2, cv2.LINE_AA)
        (u, v), _ = cam.project(self.agent_position(self.state))
        cv2.circle(img, (int(u), int(v)), 5, (30, 30, 160), -1, cv2.LINE_AA)
        return img


class ArmGame(SafetyGame):
    """Move a Franka Panda's gripper (PyBullet, joints set by inverse kinematics) from a start to a goal past an
    obstacle region; the MPC plans end-effector velocities. The hidden constraint is 20 RBFs fitted to the obstacle."""

    name = "arm"
    obstacle = (np.array([0.45, -0.12, 0.05]), np.array([0.6, 0.12, 0.3]))

    def __init__(self, misspecified: bool = False, max_steps: int = 100, render_size=(224, 224)):
        super().__init__(misspecified, max_steps, render_size)
        with quiet_native_output():
            import pybullet
            import pybullet_data
            from pybullet_utils.bullet_client import BulletClient

            self._pybullet = pybullet
            self._p = BulletClient(connection_mode=pybullet.DIRECT)
        p = self._p
        p.setAdditionalSearchPath(pybullet_data.getDataPath())
        p.loadURDF("plane.urdf")
        self._robot = p.loadURDF("franka_panda/panda.urdf", useFixedBase=True)
        self._ee = 11  # panda_grasptarget_hand
        revolute = pybullet.JOINT_REVOLUTE
        self._joints = [j for j in range(p.getNumJoints(self._robot)) if p.getJointInfo(self._robot, j)[2] == revolute]
        lo, hi = self.obstacle
        box = p.createVisualShape(pybullet.GEOM_BOX, halfExtents=list((hi - lo) / 2), rgbaColor=[0.9, 0.2, 0.2, 0.45])
        p.createMultiBody(baseVisualShapeIndex=box, basePosition=list((hi + lo) / 2))
        sphere = p.createVisualShape(pybullet.GEOM_SPHERE, radius=0.025, rgbaColor=[0.1, 0.8, 0.2, 1])
        self._goal_body = p.createMultiBody(baseVisualShapeIndex=sphere, basePosition=[0, 0, -1])

    def make_model(self) -> GameModel:
        dt = 0.1

        def dynamics(x, u, ops):
            return ops.vertcat(x[0] + dt * u[0], x[1] + dt * u[1], x[2] + dt * u[2])

        def stage(x, u, goal, ops):
            return sum((x[i] - goal[i]) ** 2 for i in range(3)) + 0.5 * sum(u[i] ** 2 for i in range(3))

        def terminal(x, goal, ops):
            return 10.0 * sum((x[i] - goal[i]) ** 2 for i in range(3))

        lo, hi = self.obstacle
        grid = [
            np.linspace(lo[0] + 0.03, hi[0] - 0.03, 2),
            np.linspace(lo[1] + 0.02, hi[1] - 0.02, 5),
            np.linspace(lo[2] + 0.04, hi[2] - 0.04, 2),
        ]
        centers = np.array(list(itertools.product(*grid)))  # 2 x 5 x 2 RBFs inside the obstacle
        features = RBFFeatures(centers=centers, width=0.07, position=(0, 1, 2), bias=-1.0, steps=tuple(range(1, 9)))
        features.discount = 0.8
        box = (np.full(20, -10.0), np.full(20, 10.0))
        u = np.full(3, 5.0)
        return GameModel(3, 3, dt, -u, u, features, box, 12, 0.1, dynamics, stage, terminal)

    def unsafe_region(self, p) -> bool:
        lo, hi = self.obstacle
        return bool(np.all(p >= lo) and np.all(p <= hi))

    def true_theta(self) -> np.ndarray:
        lo, hi = self.obstacle  # fitted around the obstacle, where the constraint matters
        return fit_rbf_weights(
            self.model.features, self.unsafe_region, lo - 0.15, hi + 0.15, self.model.features.bias, 24
        )

    def misspecified_box(self):
        low, _ = self.model.theta_box
        return low, np.zeros_like(low)  # no hypothesis can raise the obstacle: all say the workspace is safe

    def sample_start(self, rng):
        # in front of the obstacle, with the goal behind it on one side: the straight way clips its side
        side = rng.choice([-1.0, 1.0])
        start = np.array([0.33, rng.uniform(-0.06, 0.06), rng.uniform(0.12, 0.22)])
        goal = np.array([0.72, side * rng.uniform(0.14, 0.22), rng.uniform(0.1, 0.2)])
        self._place(start)
        self._p.resetBasePositionAndOrientation(self._goal_body, list(goal), [0, 0, 0, 1])
        return start, goal

    def _place(self, position: np.ndarray) -> None:
        p = self._p
        down = p.getQuaternionFromEuler([math.pi, 0.0, 0.0])
        for _ in range(3):  # a few IK passes from the last solution converge on the target
            q = p.calculateInverseKinematics(self._robot, self._ee, list(position), down, maxNumIterations=100)
            for j, value in zip(self._joints, q, strict=False):
                p.resetJointState(self._robot, j, value)

    def step(self, action):
        out = super().step(action)
        self._place(self.state)
        return out

    goal_radius = 0.03

    def goal_distance(self, x):
        return float(np.linalg.norm(x - self.goal))

    def agent_position(self, x):
        return np.asarray(self._p.getLinkState(self._robot, self._ee)[4])

    def camera_for(self) -> Camera:
        settings = {"distance": 0.9, "yaw": 50.0, "pitch": -35.0, "fov": 60.0}
        return orbit_camera(self._pybullet, (0.5, 0.0, 0.15), settings, self.width, self.height)

    def draw(self) -> np.ndarray:
        cam = self.camera_for()
        img = np.ascontiguousarray(render_pybullet(self._pybullet, self._p, cam, False))
        if self.plan is not None:
            uv, _ = cam.project(np.asarray([x[:3] for x in self.plan]))
            for a, b in itertools.pairwise(uv):
                if np.all(np.isfinite([*a, *b])):
                    cv2.line(img, tuple(int(v) for v in a), tuple(int(v) for v in b), (255, 220, 0), 2, cv2.LINE_AA)
        return img

    def close(self) -> None:
        if self._p is not None:
            self._p.disconnect()
            self._p = None


def top_down_camera(low: np.ndarray, high: np.ndarray, width: int, height: int) -> Camera:
    """An orthographic camera looking down on the plane z = 0, framing ``low`` .. ``high`` (x to the right, y up)."""
    view = np.eye(4)
    view[2, 3] = -10.0  # the camera at z = 10, looking down -z
    proj = np.eye(4)
    proj[0, 0], proj[0, 3] = 2 / (high[0] - low[0]), -(high[0] + low[0]) / (high[0] - low[0])
    proj[1, 1], proj[1, 3] = 2 / (high[1] - low[1]), -(high[1] + low[1]) / (high[1] - low[1])
    proj[2, 2], proj[2, 3] = -2 / 20.0, -1.0
    return Camera(view, proj, width, height)


GAMES: dict[str, type[SafetyGame]] = {"pendulum": PendulumGame, "drone": DroneGame, "arm": ArmGame}


def game_names() -> list[str]:
    """The games' names, the ids of the ``safety`` env family."""
    return list(GAMES)


class SafetyEnv(RobotEnv):
    """A safety game with the info contract: ``agent_pos``, ``factors`` (distance to the goal, control cost, and the
    true constraint c_H as ``constraint``), ``success`` (goal reached without a violation) and its camera."""

    family = "safety"

    def __init__(
        self, game: str, seed: int | None = None, render_size=224, misspecified: bool = False, max_steps: int = 100
    ):
        size = _parse_size(render_size)
        super().__init__(GAMES[game](misspecified, max_steps, size), f"safety:{game}", seed=seed, render_size=size)
        self.game = self.env.unwrapped
        self.factor_info = {
            "goal_distance": FactorInfo("distance from the agent to the goal", -1),
            "ctrl_cost": CTRL_COST,
            "constraint": FactorInfo("the hidden true safety constraint c_H(x) (> 0: unsafe)", -1),
        }

    def agent_pos(self) -> np.ndarray:
        return self.game.agent_position(self.game.state)

    def compute_factors(self, obs, action, reward, info) -> dict[str, float]:
        distance = self.game.goal_distance(self.game.state)
        return {"goal_distance": distance, "ctrl_cost": ctrl_cost(action), "constraint": float(info["constraint"])}

    def is_success(self, info: dict) -> bool | None:
        return bool(info.get("goal_reached", False) and not info.get("violation", False))

    @property
    def camera(self) -> Camera:
        return self.game.camera_for()

    def render(self) -> np.ndarray:
        return self.game.render()
