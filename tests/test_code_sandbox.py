import os
import pickle

import numpy as np
import pytest

from robofeedback.rewards.base import Transitions
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


HOSTILE = {
    "escape through the class hierarchy": ("return ().__class__.__mro__, {}", "check", "__mro__"),
    "import os": ("import os\n    return 0.0, {}", "check", "import of ['os']"),
    "__import__": ("return __import__('os'), {}", "check", "__import__"),
    "open a file": ("return open('/etc/passwd').read(), {}", "check", "open()"),
    "exec": ("exec('x = 1')\n    return 0.0, {}", "check", "exec()"),
    "getattr": ("return getattr(obs, 'shape'), {}", "check", "getattr()"),
    "numpy file access": ("np.save('/tmp/stolen.npy', obs)\n    return 0.0, {}", "check", ".save"),
    "while True": ("while True:\n        pass", "check", "never ends"),
    "generator frames": ("g = (x for x in [1])\n    return g.gi_frame, {}", "compile", "gi_frame"),
    "format-string attribute walk": ("s = '{0.real}'.format(1)\n    return 0.0, {}", "run", "format"),
    "endless loop": ("x = 0\n    for i in range(10 ** 12):\n        x += i\n    return 0.0, {}", "run", "no answer"),
    "huge allocation": ("a = np.ones(10 ** 10)\n    return float(a.sum()), {}", "run", "memory limit"),
    "huge list": ("a = [1] * (10 ** 10)\n    return 0.0, {}", "run", "memory limit"),
    "recursion bomb": ("return f(0), {}", "run", "recursion"),
    "NaN reward": ("return float('nan'), {}", "run", "non-finite"),
    "not a pair": ("return 1.0", "run", "must return (reward, dict"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_code_is_refused_or_contained(name):
    body, stage, message = HOSTILE[name]
    helpers = "import numpy as np\n\ndef f(n):\n    return f(n + 1)\n\n"
    source = f"{helpers}def compute_reward(obs, action, info):\n    {body}\n"
    with pytest.raises(RewardCodeError) as caught:
        reward = CodeReward(source, timeout=1.0, memory_mb=256)
        reward(transitions())
    assert caught.value.stage == stage
    assert message in str(caught.value)
    assert not os.path.exists("/tmp/stolen.npy")
    # the parent is unharmed: a good candidate still runs afterwards
    assert CodeReward(GOOD)(transitions()).shape == (4,)


def test_a_failed_candidate_keeps_its_error():
    reward = CodeReward("def compute_reward(obs, action, info):\n    return float(obs[99]), {}\n")
    with pytest.raises(RewardCodeError, match="IndexError"):
        reward(transitions())
    with pytest.raises(RewardCodeError, match="IndexError"):  # the same error again, no new worker
        reward(transitions())
