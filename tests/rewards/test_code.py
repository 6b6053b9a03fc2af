import os
import pickle
import re

import numpy as np
import pytest

from robofeedback.protocols import Transitions
from robofeedback.rewards.code import CodeReward, RewardCodeError, check_code, extract_code

GOOD = """
import numpy as np

def compute_reward(obs, action, info):
    distance = float(np.linalg.norm(obs[:3] - obs[3:6]))
    effort = 0.01 * float(np.sum(action ** 2))
    return -distance - effort, {"distance": -distance, "effort": -effort}
"""

BATCHED = """
import numpy as np

def compute_reward(obs, action, info):
    distance = np.linalg.norm(obs[:, :3] - obs[:, 3:6], axis=1)
    return -distance, {"distance": -distance}
"""


def transitions(n=4, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 6))
    return Transitions(obs, rng.normal(size=(n, 2)), obs, [{} for _ in range(n)])


def test_good_code_runs_in_the_sandbox_and_logs_its_components():
    batch = transitions()
    reward = CodeReward(GOOD)
    values = reward(batch)
    distance = np.linalg.norm(batch.next_obs[:, :3] - batch.next_obs[:, 3:6], axis=1)
    np.testing.assert_allclose(values, -distance - 0.01 * (batch.action**2).sum(1), rtol=1e-5)
    assert batch.info[0]["factors"]["reward/distance"] == pytest.approx(-distance[0])
    batched = CodeReward(BATCHED, batched=True)
    np.testing.assert_allclose(batched(transitions()), -distance, rtol=1e-5)
    copy = pickle.loads(pickle.dumps(reward))  # e.g. into SubprocVecEnv workers: a fresh sandbox on first use
    np.testing.assert_allclose(copy(transitions()), values)
    reward.close()


def test_code_is_taken_from_the_llm_answer():
    answer = f"Here is my reward.\n```python\n{GOOD}```\nIt penalises distance."
    assert "def compute_reward" in extract_code(answer) and "Here is" not in extract_code(answer)
    with pytest.raises(RewardCodeError, match="extract"):
        extract_code("```python\nprint('no function')\n```")
    with pytest.raises(RewardCodeError, match="obs, action, info"):
        check_code("def compute_reward(state):\n    return 0.0, {}\n")


# What the first layer tells the LLM, and where. Whether each attack is contained, and by which layer, with the first
# layer and without it, is tests/rewards/test_jail.py's corpus; these check the messages.
REFUSED = {
    "escape through the class hierarchy": ("return ().__class__.__mro__, {}", "check", "__mro__"),
    "import os": ("import os\n    return 0.0, {}", "check", "import of ['os']"),
    "__import__": ("return __import__('os'), {}", "check", "__import__"),
    "open a file": ("return open('/etc/passwd').read(), {}", "check", "open()"),
    "exec": ("exec('x = 1')\n    return 0.0, {}", "check", "exec()"),
    "getattr": ("return getattr(obs, 'shape'), {}", "check", "getattr()"),
    "numpy file access": ("np.save('/tmp/stolen.npy', obs)\n    return 0.0, {}", "check", ".save"),
    "from numpy import save": ("from numpy import save\n    return 0.0, {}", "check", "from numpy import save"),
    "while True": ("while True:\n        pass", "check", "never ends"),
    "generator frames": ("g = (x for x in [1])\n    return g.gi_frame, {}", "check", "gi_frame"),
    "format-string attribute walk": ("s = '{0.real}'.format(1)\n    return 0.0, {}", "check", "use an f-string"),
    "a private name": ("_x = 1\n    return 0.0, {}", "compile", "starts with"),
    "a numpy submodule": ("return np.ma.zeros(1), {}", "run", "numpy.ma is not allowed"),
}
FAILED = {  # what the message says, and what stopped it (None: the code's own mistake)
    "endless loop": (
        "x = 0\n    for i in range(10 ** 12):\n        x += i\n    return 0.0, {}",
        "no answer",
        "wall clock",
    ),
    "huge allocation": ("a = np.ones(10 ** 10)\n    return float(a.sum()), {}", "memory limit", "rlimit"),
    "recursion bomb": ("return f(0), {}", "recursion", "recursion limit"),
    "NaN reward": ("return float('nan'), {}", "non-finite", None),
    "not a pair": ("return 1.0", "must return (reward, dict", "protocol"),
    "too few rewards in batched code": ("return obs[:1, 0], {}", "1 rewards for 4 transitions", None),
}


def _source(body):
    helpers = "import numpy as np\n\ndef f(n):\n    return f(n + 1)\n\n"
    return f"{helpers}def compute_reward(obs, action, info):\n    {body}\n"


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_code_gets_a_clear_message_at_the_right_stage(name):
    body, stage, message = REFUSED[name]
    with pytest.raises(RewardCodeError) as caught:
        reward = CodeReward(_source(body), timeout=1.0, memory_mb=256)
        reward(transitions())
    assert caught.value.stage == stage
    assert caught.value.layer in ("ast check", "RestrictedPython")
    assert message in str(caught.value)
    if stage == "check":  # the check needs no worker: check_code says the same in this process
        with pytest.raises(RewardCodeError, match=re.escape(message)):
            check_code(_source(body))
    assert not os.path.exists("/tmp/stolen.npy")


@pytest.mark.parametrize("name", sorted(FAILED))
def test_code_that_fails_when_run_says_why(name):
    body, message, layer = FAILED[name]
    with pytest.raises(RewardCodeError) as caught:
        reward = CodeReward(_source(body), batched="batched" in name, timeout=1.0, memory_mb=256)
        reward(transitions())
    assert (caught.value.stage, caught.value.layer) == ("run", layer)
    assert message in str(caught.value)


def test_info_keys_never_include_what_reward_code_must_not_see():
    for key in ("env_reward", "success", "is_success", "episode", "frames"):
        with pytest.raises(ValueError, match=key):
            CodeReward(GOOD, info_keys=("factors", key))
    source = "def compute_reward(obs, action, info):\n    return float(info['gripper'] + len(info)), {}\n"
    reward = CodeReward(source, info_keys=("gripper",))
    batch = transitions()
    for i, info in enumerate(batch.info):
        info.update(gripper=float(i), success=True, env_reward=5.0, factors={"distance": 1.0})
    np.testing.assert_allclose(reward(batch), np.arange(4) + 1.0)  # only the key it asked for
    reward.close()


def test_a_failed_candidate_keeps_its_error():
    reward = CodeReward("def compute_reward(obs, action, info):\n    return float(obs[99]), {}\n")
    with pytest.raises(RewardCodeError, match="IndexError"):
        reward(transitions())
    with pytest.raises(RewardCodeError, match="IndexError"):  # the same error again, no new worker
        reward(transitions())


def _run_in_this_process(reward):
    return reward(transitions()).tolist(), reward.applied


def test_a_copy_in_another_process_runs_in_a_jail_of_its_own():
    """As in SubprocVecEnv and Ray workers: the pickled reward starts its own jailed worker there."""
    import multiprocessing

    reward = CodeReward(GOOD)
    expected = reward(transitions()).tolist()
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        values, applied = pool.apply(_run_in_this_process, (reward,))
    reward.close()
    np.testing.assert_allclose(values, expected)
    assert applied == reward.applied and {"landlock", "seccomp", "rlimits"} <= set(applied)
