"""A simulator's state as one flat float64 vector, to record at every step and to restore in another env of the same
spec, so that a clip is rendered only when a person (or a judge) will look at it.

PyBullet: every body's base pose and velocity and every joint's position and velocity. MuJoCo: ``qpos``, ``qvel``,
the mocap bodies' poses, the model's body positions (tasks move fixtures there) and the site positions that tasks
set after each step (MetaWorld's goal marker), which a forward pass would otherwise recompute.
"""

from __future__ import annotations

import numpy as np


def bullet_state(client) -> np.ndarray:
    """Every body's base position, orientation, linear and angular velocity, then each joint's position and
    velocity, in body order."""
    parts = []
    for body in (client.getBodyUniqueId(i) for i in range(client.getNumBodies())):
        position, orientation = client.getBasePositionAndOrientation(body)
        linear, angular = client.getBaseVelocity(body)
        parts += [position, orientation, linear, angular]
        joints = client.getJointStates(body, range(client.getNumJoints(body))) if client.getNumJoints(body) else []
        parts += [(joint[0], joint[1]) for joint in joints]
    return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts]) if parts else np.zeros(0)


def set_bullet_state(client, state: np.ndarray) -> None:
    """Put every body and joint where :func:`bullet_state` found them (the same bodies, in the same order)."""
    state = np.asarray(state, dtype=np.float64)
    at = 0

    def take(n: int) -> list[float]:
        nonlocal at
        if at + n > len(state):
            raise ValueError(f"a PyBullet state of {len(state)} values does not fit this simulation's bodies")
        at += n
        return state[at - n : at].tolist()

    for body in (client.getBodyUniqueId(i) for i in range(client.getNumBodies())):
        position, orientation, linear, angular = take(3), take(4), take(3), take(3)
        client.resetBasePositionAndOrientation(body, position, orientation)
        client.resetBaseVelocity(body, linear, angular)
        for joint in range(client.getNumJoints(body)):
            angle, velocity = take(2)
            client.resetJointState(body, joint, angle, velocity)
    if at != len(state):
        raise ValueError(f"a PyBullet state of {len(state)} values does not fit this simulation's bodies ({at})")


def mujoco_state(model, data) -> np.ndarray:
    """``qpos``, ``qvel``, mocap positions and orientations, body positions and site positions, concatenated."""
    return np.concatenate(
        [
            data.qpos,
            data.qvel,
            data.mocap_pos.ravel(),
            data.mocap_quat.ravel(),
            model.body_pos.ravel(),
            data.site_xpos.ravel(),
        ]
    ).astype(np.float64)


def set_mujoco_state(model, data, state: np.ndarray) -> None:
    """Restore a :func:`mujoco_state` and run a forward pass; the recorded site positions go back after it."""
    import mujoco

    sizes = [
        ("qpos", model.nq),
        ("qvel", model.nv),
        ("mocap_pos", 3 * model.nmocap),
        ("mocap_quat", 4 * model.nmocap),
        ("body_pos", 3 * model.nbody),
        ("site_xpos", 3 * model.nsite),
    ]
    state = np.asarray(state, dtype=np.float64)
    if len(state) != sum(n for _, n in sizes):
        raise ValueError(f"a MuJoCo state of {len(state)} values does not fit this model ({sum(n for _, n in sizes)})")
    parts, at = {}, 0
    for name, n in sizes:
        parts[name], at = state[at : at + n], at + n
    data.qpos[:] = parts["qpos"]
    data.qvel[:] = parts["qvel"]
    data.mocap_pos[:] = parts["mocap_pos"].reshape(-1, 3)
    data.mocap_quat[:] = parts["mocap_quat"].reshape(-1, 4)
    model.body_pos[:] = parts["body_pos"].reshape(-1, 3)
    mujoco.mj_forward(model, data)
    data.site_xpos[:] = parts["site_xpos"].reshape(-1, 3)
