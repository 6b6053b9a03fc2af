"""Write the hand-written replays that `robofeedback bench --suite bilevel` serves in place of an LLM
(assets/bilevel/*.jsonl).

They are written by hand to read like a code model's answers to the bi-level loop's prompts on MetaWorld
drawer-close, where each update answers the judge's feedback on the previous policy's video. They were not
produced by a model and do not see the run's actual feedback: they make a reproducible run of the LLM path
without a server. One line per LLM call, in the order the loop makes them over 4 iterations: the first
reward (1), the update after iteration 0, which reads an info key the env does not have (1), its regeneration
(1), the update after iteration 1 (1) and after iteration 2 (1).
"""

import json
from pathlib import Path

ARRAYS = "    hand, handle, goal = obs[0:3], obs[4:7], obs[36:39]\n"


def answer(text: str, body: str) -> str:
    return f"{text}\n\n```python\nimport numpy as np\n\ndef compute_reward(obs, action, info):\n{ARRAYS}{body}```\n"


DRAWER_CLOSE = [
    [
        answer(
            "To close the drawer the gripper (obs[0:3]) must first get to the handle (obs[4:7]) and then push "
            "the handle to its closed position, the goal (obs[36:39]). A first reward penalises both distances.",
            "    reach = float(np.linalg.norm(hand - handle))\n"
            "    to_goal = float(np.linalg.norm(handle - goal))\n"
            '    return -reach - to_goal, {"reach": -reach, "to_goal": -to_goal}\n',
        )
    ],
    [
        answer(
            "The feedback says the learner's motion does not reach the expert's last phases. I reward the "
            "drawer being closed directly.",
            '    closed = 1.0 if info["drawer_closed"] else 0.0\n'
            "    reach = float(np.linalg.norm(hand - handle))\n"
            '    return closed - reach, {"closed": closed, "reach": -reach}\n',
        )
    ],
    [
        answer(
            "The judge finds the later phases of the expert's motion missing and the learner's motion ending "
            "away from where the expert's ends: the push is not carried through. I keep the reaching term, make "
            "the closing term dominant and sharp near the goal with exp(-d / 0.05), and add a small action "
            "penalty so that the motion stays as calm as the expert's.",
            "    reach = float(np.linalg.norm(hand - handle))\n"
            "    to_goal = float(np.linalg.norm(handle - goal))\n"
            "    closed = float(np.exp(-to_goal / 0.05))\n"
            "    effort = 0.05 * float(np.sum(np.square(action)))\n"
            '    return -reach + 2.0 * closed - effort, {"reach": -reach, "closed": 2.0 * closed, "effort": -effort}\n',
        )
    ],
    [
        answer(
            "According to the feedback the learner now moves faster and more than the expert. The closing term "
            "works, so I keep it, raise the action penalty, and reward the handle's progress towards the goal "
            "since the previous step (obs[22:25] is the handle's previous position) instead of the raw distance.",
            "    previous = obs[22:25]\n"
            "    progress = float(np.linalg.norm(previous - goal) - np.linalg.norm(handle - goal))\n"
            "    reach = float(np.linalg.norm(hand - handle))\n"
            "    closed = float(np.exp(-float(np.linalg.norm(handle - goal)) / 0.05))\n"
            "    effort = 0.2 * float(np.sum(np.square(action)))\n"
            "    return -reach + 2.0 * closed + 20.0 * progress - effort, {\n"
            '        "reach": -reach, "closed": 2.0 * closed, "progress": 20.0 * progress, "effort": -effort}\n',
        )
    ],
    [
        answer(
            "The motion is closer to the expert's now. To make the approach as direct as the expert's I weigh "
            "the reaching term more and keep the rest.",
            "    previous = obs[22:25]\n"
            "    progress = float(np.linalg.norm(previous - goal) - np.linalg.norm(handle - goal))\n"
            "    reach = float(np.linalg.norm(hand - handle))\n"
            "    closed = float(np.exp(-float(np.linalg.norm(handle - goal)) / 0.05))\n"
            "    effort = 0.2 * float(np.sum(np.square(action)))\n"
            "    return -2.0 * reach + 2.0 * closed + 20.0 * progress - effort, {\n"
            '        "reach": -2.0 * reach, "closed": 2.0 * closed, "progress": 20.0 * progress, "effort": -effort}\n',
        )
    ],
]

REPLAYS = {"metaworld-drawer-close": DRAWER_CLOSE}


if __name__ == "__main__":
    folder = Path(__file__).resolve().parents[1] / "assets" / "bilevel"
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in REPLAYS.items():
        (folder / f"{name}.jsonl").write_text("".join(json.dumps({"answers": answers}) + "\n" for answers in lines))
        print(f"wrote {folder / name}.jsonl")
