"""Write the hand-written replays that `robofeedback bench --suite icpl` serves in place of an LLM
(assets/icpl/*.jsonl). They are not a model's answers and do not depend on the prompt.

They are written to read like a code model's answers to ICPL's prompts: a short analysis, then a
reward function; one of the first round's answers has the kind of bug such models make (PandaReach: object
slots its observation does not have; drawer-close: an info key that does not exist), so the loop
regenerates it. One line per LLM call, in
the order the loop makes them with K = 4: round 0 (4 answers), the regeneration of the broken one (1),
round 1 (4), the difference between round 0's and round 1's best code (1), round 2 (4), the next
difference (1).
"""

import json
from pathlib import Path


def answer(text: str, body: str) -> str:
    return f"{text}\n\n```python\nimport numpy as np\n\ndef compute_reward(obs, action, info):\n{body}```\n"


REACH = [
    [
        answer(
            "The gripper must reach the target, so the main term is the negative distance between the gripper "
            "(obs[6:9]) and the desired goal (obs[3:6]), with a bonus once it is close.",
            "    distance = float(np.linalg.norm(obs[6:9] - obs[3:6]))\n"
            "    bonus = 1.0 if distance < 0.05 else 0.0\n"
            '    return -distance + bonus, {"distance": -distance, "bonus": bonus}\n',
        ),
        answer(
            "A bounded, smooth reward is easier to learn from: exp(-d / 0.1) is 1 at the target and decays "
            "with distance.",
            "    distance = float(np.linalg.norm(obs[6:9] - obs[3:6]))\n"
            "    closeness = float(np.exp(-distance / 0.1))\n"
            '    return closeness, {"closeness": closeness}\n',
        ),
        answer(
            "I reward approaching the object first and then moving it to the goal.",
            "    to_object = float(np.linalg.norm(obs[6:9] - obs[12:15]))\n"
            "    to_goal = float(np.linalg.norm(obs[12:15] - obs[3:6]))\n"
            '    return -to_object - to_goal, {"to_object": -to_object, "to_goal": -to_goal}\n',
        ),
        answer(
            "Distance to the goal, and a small action penalty for smooth motion.",
            "    distance = float(np.linalg.norm(obs[6:9] - obs[3:6]))\n"
            "    effort = 0.1 * float(np.sum(np.square(action)))\n"
            '    return -distance - effort, {"distance": -distance, "effort": -effort}\n',
        ),
    ],
    [
        answer(
            "The distance to the target, scaled up so that it dominates, and a penalty on the gripper speed "
            "(obs[9:12]) to avoid overshooting.",
            "    distance = float(np.linalg.norm(obs[6:9] - obs[3:6]))\n"
            "    speed = float(np.linalg.norm(obs[9:12]))\n"
            '    return -10.0 * distance - 0.1 * speed, {"distance": -10.0 * distance, "speed": -0.1 * speed}\n',
        ),
    ],
    [
        answer(
            "The traces show the distance term changing slowly near the target. I keep the distance term and "
            "add a sharper exponential term so that the last centimetres still matter.",
            "    distance = float(np.linalg.norm(obs[6:9] - obs[3:6]))\n"
            "    near = float(np.exp(-distance / 0.02))\n"
            '    return -distance + near, {"distance": -distance, "near": near}\n',
        ),
        answer(
            "Scale the distance so that its range is comparable to the bonus, and keep the success bonus.",
            "    distance = float(np.linalg.norm(obs[6:9] - obs[3:6]))\n"
            "    bonus = 2.0 if distance < 0.05 else 0.0\n"
            '    return -5.0 * distance + bonus, {"distance": -5.0 * distance, "bonus": bonus}\n',
        ),
        answer(
            "Use the exponential closeness with a temperature of 0.05 and a small effort penalty.",
            "    distance = float(np.linalg.norm(obs[6:9] - obs[3:6]))\n"
            "    closeness = float(np.exp(-distance / 0.05))\n"
            "    effort = 0.05 * float(np.sum(np.square(action)))\n"
            '    return closeness - effort, {"closeness": closeness, "effort": -effort}\n',
        ),
        answer(
            "Reward progress along each axis separately so that every coordinate gets a signal.",
            "    error = np.abs(obs[6:9] - obs[3:6])\n"
            "    per_axis = -float(np.sum(error))\n"
            '    return per_axis, {"per_axis": per_axis}\n',
        ),
    ],
    [
        "- Function B multiplies the distance penalty by a constant and adds a second, sharper term near the target; "
        "A used the plain distance with a threshold bonus."
    ],
    [
        answer(
            "The preferred function combines a dense distance term with a sharp term near the target. I raise "
            "the weight of the sharp term so the policy settles on the target instead of hovering nearby.",
            "    distance = float(np.linalg.norm(obs[6:9] - obs[3:6]))\n"
            "    near = 2.0 * float(np.exp(-distance / 0.02))\n"
            '    return -distance + near, {"distance": -distance, "near": near}\n',
        ),
        answer(
            "Same structure, with a speed penalty close to the target only, to stop there.",
            "    distance = float(np.linalg.norm(obs[6:9] - obs[3:6]))\n"
            "    near = float(np.exp(-distance / 0.02))\n"
            "    brake = -0.1 * float(np.linalg.norm(obs[9:12])) * near\n"
            '    return -distance + near + brake, {"distance": -distance, "near": near, "brake": brake}\n',
        ),
        answer(
            "A log-shaped distance reward gives large gradients close to the target.",
            "    distance = float(np.linalg.norm(obs[6:9] - obs[3:6]))\n"
            "    shaped = -float(np.log(distance + 0.01))\n"
            '    return shaped, {"log_distance": shaped}\n',
        ),
        answer(
            "Keep the preferred function as it is, scaled by 2, as a control.",
            "    distance = float(np.linalg.norm(obs[6:9] - obs[3:6]))\n"
            "    near = float(np.exp(-distance / 0.02))\n"
            '    return 2.0 * (-distance + near), {"distance": -2.0 * distance, "near": 2.0 * near}\n',
        ),
    ],
    [
        "- Function B doubles the weight of the sharp term near the target (or scales the whole reward); the dense "
        "distance term is unchanged."
    ],
]

HANDLE = "    hand, handle, goal = obs[0:3], obs[4:7], obs[36:39]\n"

DRAWER_CLOSE = [
    [
        answer(
            "To close the drawer the gripper has to reach the handle and push it to the goal position. The "
            "reward is the negative distance of the handle to the goal plus a smaller reaching term.",
            HANDLE + "    to_goal = float(np.linalg.norm(handle - goal))\n"
            "    reach = float(np.linalg.norm(hand - handle))\n"
            '    return -to_goal - 0.5 * reach, {"to_goal": -to_goal, "reach": -0.5 * reach}\n',
        ),
        answer(
            "A bounded reward: the closer the handle is to the goal, the closer the reward is to 1.",
            HANDLE + "    to_goal = float(np.linalg.norm(handle - goal))\n"
            "    closed = float(np.exp(-to_goal / 0.05))\n"
            '    return closed, {"closed": closed}\n',
        ),
        answer(
            "I use the goal position from info to measure how far the drawer still has to move.",
            '    to_goal = float(np.linalg.norm(obs[4:7] - info["goal"]))\n'
            '    return -to_goal, {"to_goal": -to_goal}\n',
        ),
        answer(
            "Reward pushing along the drawer's axis (y) towards the goal, and reaching the handle.",
            HANDLE + "    push = -abs(float(handle[1] - goal[1]))\n"
            "    reach = -float(np.linalg.norm(hand - handle))\n"
            '    return push + 0.2 * reach, {"push": push, "reach": 0.2 * reach}\n',
        ),
    ],
    [
        answer(
            "The handle-to-goal distance, scaled, with a bonus once the handle is within 5 cm of the goal.",
            HANDLE + "    to_goal = float(np.linalg.norm(handle - goal))\n"
            "    bonus = 1.0 if to_goal < 0.05 else 0.0\n"
            '    return -5.0 * to_goal + bonus, {"to_goal": -5.0 * to_goal, "bonus": bonus}\n',
        ),
    ],
    [
        answer(
            "The traces show the reaching term staying large while the drawer barely moves. I make the reaching "
            "term sharper near the handle and keep the handle-to-goal term dominant.",
            HANDLE + "    to_goal = float(np.linalg.norm(handle - goal))\n"
            "    reach = float(np.linalg.norm(hand - handle))\n"
            "    near = float(np.exp(-reach / 0.05))\n"
            '    return -2.0 * to_goal + 0.5 * near, {"to_goal": -2.0 * to_goal, "near_handle": 0.5 * near}\n',
        ),
        answer(
            "Keep the preferred structure and add a bonus for closing the drawer.",
            HANDLE + "    to_goal = float(np.linalg.norm(handle - goal))\n"
            "    reach = float(np.linalg.norm(hand - handle))\n"
            "    bonus = 2.0 if to_goal < 0.05 else 0.0\n"
            '    return -to_goal - 0.5 * reach + bonus, {"to_goal": -to_goal, "reach": -0.5 * reach, '
            '"bonus": bonus}\n',
        ),
        answer(
            "An exponential on both distances, so that each term saturates at 1.",
            HANDLE + "    to_goal = float(np.linalg.norm(handle - goal))\n"
            "    reach = float(np.linalg.norm(hand - handle))\n"
            "    closed = float(np.exp(-to_goal / 0.1))\n"
            "    near = float(np.exp(-reach / 0.1))\n"
            '    return closed + 0.3 * near, {"closed": closed, "near_handle": 0.3 * near}\n',
        ),
        answer(
            "Reward the drawer's velocity towards the goal (the change of the handle position since the last "
            "step, obs[22:25] is the previous handle position) and its distance.",
            HANDLE + "    previous = obs[22:25]\n"
            "    progress = float(np.linalg.norm(previous - goal) - np.linalg.norm(handle - goal))\n"
            "    to_goal = float(np.linalg.norm(handle - goal))\n"
            '    return 50.0 * progress - to_goal, {"progress": 50.0 * progress, "to_goal": -to_goal}\n',
        ),
    ],
    [
        "- Function B weighs the handle-to-goal distance twice as much and replaces the linear reaching term by a "
        "sharp exponential near the handle."
    ],
    [
        answer(
            "The preferred function closes the drawer reliably; I keep it and add a small action penalty so the "
            "arm does not slam the drawer.",
            HANDLE + "    to_goal = float(np.linalg.norm(handle - goal))\n"
            "    near = float(np.exp(-float(np.linalg.norm(hand - handle)) / 0.05))\n"
            "    effort = 0.01 * float(np.sum(np.square(action)))\n"
            '    return -2.0 * to_goal + 0.5 * near - effort, {"to_goal": -2.0 * to_goal, '
            '"near_handle": 0.5 * near, "effort": -effort}\n',
        ),
        answer(
            "Same terms with a larger weight on closing.",
            HANDLE + "    to_goal = float(np.linalg.norm(handle - goal))\n"
            "    near = float(np.exp(-float(np.linalg.norm(hand - handle)) / 0.05))\n"
            '    return -4.0 * to_goal + 0.5 * near, {"to_goal": -4.0 * to_goal, "near_handle": 0.5 * near}\n',
        ),
        answer(
            "Add the closing bonus to the preferred function.",
            HANDLE + "    to_goal = float(np.linalg.norm(handle - goal))\n"
            "    near = float(np.exp(-float(np.linalg.norm(hand - handle)) / 0.05))\n"
            "    bonus = 1.0 if to_goal < 0.05 else 0.0\n"
            '    return -2.0 * to_goal + 0.5 * near + bonus, {"to_goal": -2.0 * to_goal, '
            '"near_handle": 0.5 * near, "bonus": bonus}\n',
        ),
        answer(
            "A log-shaped closing term for large gradients near the closed position.",
            HANDLE + "    to_goal = float(np.linalg.norm(handle - goal))\n"
            "    shaped = -float(np.log(to_goal + 0.01))\n"
            '    return shaped, {"log_to_goal": shaped}\n',
        ),
    ],
    ["- Function B adds a small action penalty (or a larger closing weight, or a bonus) to the same two terms."],
]

REPLAYS = {"panda-PandaReach-v3": REACH, "metaworld-drawer-close": DRAWER_CLOSE}


if __name__ == "__main__":
    folder = Path(__file__).resolve().parents[1] / "assets" / "icpl"
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in REPLAYS.items():
        (folder / f"{name}.jsonl").write_text("".join(json.dumps({"answers": answers}) + "\n" for answers in lines))
        print(f"wrote {folder / name}.jsonl")
