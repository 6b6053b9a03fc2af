"""The tasks in words: for each known task, what it asks (for an LLM or a chat VLM), and the CLIP goal and
baseline prompts (for VLM-RM's reward and the CLIP judges)."""

from __future__ import annotations

# What the judges are told about the benchmark tasks: the task in words (chat judge) and the CLIP goal and baseline.
TASKS = {
    "metaworld:drawer-open": {
        "task": "to pull the drawer open",
        "goal": "the drawer is open",
        "baseline": "the drawer is closed",
    },
    "metaworld:drawer-close": {
        "task": "to push the drawer closed",
        "goal": "the drawer is closed",
        "baseline": "the drawer is open",
    },
    "metaworld:sweep-into": {
        "task": "to sweep the cube into the hole in the table",
        "goal": "the cube is in the hole",
        "baseline": "the cube is on the table",
    },
    "metaworld:soccer": {
        "task": "to push the soccer ball into the goal",
        "goal": "the ball is in the goal",
        "baseline": "the ball is far from the goal",
    },
    "metaworld:reach": {
        "task": "to move the gripper to the red target",
        "goal": "the gripper touches the red target",
        "baseline": "the gripper is far from the red target",
    },
    "panda:PandaReach-v3": {
        "task": "to move the gripper to the green target",
        "goal": "the gripper touches the green target",
        "baseline": "the gripper is far from the green target",
    },
    "panda:PandaPush-v3": {
        "task": "to push the cube onto the green target",
        "goal": "the cube is on the target",
        "baseline": "the cube is away from the target",
    },
    "bullet:HopperBulletEnv-v0": {
        "task": "for the hopper to hop forward as far as it can without falling",
        "goal": "a one-legged robot hopping upright",
        "baseline": "a one-legged robot fallen on the ground",
    },
    "bullet:HalfCheetahBulletEnv-v0": {
        "task": "for the cheetah robot to run forward fast",
        "goal": "a robot running forward",
        "baseline": "a robot lying still",
    },
}


def task_prompts(spec: str) -> dict[str, str]:
    """The known task text, CLIP goal and baseline for ``spec`` (MetaWorld's ``-v3`` suffix and panda's ``Dense``
    ignored); empty if unknown."""
    if spec.startswith("metaworld:"):
        spec = spec.removesuffix("-v3")
    return TASKS.get(spec.replace("Dense", "") if spec.startswith("panda:") else spec, {})
