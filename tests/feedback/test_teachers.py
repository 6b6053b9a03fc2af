import math
from types import SimpleNamespace

import numpy as np
import pytest

from robofeedback.data import collect
from robofeedback.data.store import FeedbackStore
from robofeedback.envs import make
from robofeedback.feedback.teachers import (
    Teacher,
    bpref_threshold,
    make_teacher,
    mistake,
    myopic,
    oracle,
    stochastic,
)


def seg(rewards, **factors):
    return SimpleNamespace(
        env_rewards=np.asarray(rewards, float), factors={k: np.asarray(v) for k, v in factors.items()}
    )


def random_pairs(n, rng, length=10):
    return [(seg(rng.normal(size=length)), seg(rng.normal(size=length))) for _ in range(n)]


def test_oracle_prefers_the_higher_return():
    teacher = oracle()
    assert teacher.label(seg([1, 1]), seg([0, 1])) == "a"
    assert teacher.label(seg([0, 0]), seg([0, 0.5])) == "b"
    assert teacher.source == "script:oracle"


def test_mistake_flips_about_eps_of_the_labels():
    rng = np.random.default_rng(0)
    pairs = random_pairs(4000, rng)
    truth = oracle().label_many(pairs)
    noisy = mistake(0.1, seed=1).label_many(pairs)
    flipped = np.mean([t != n for t, n in zip(truth, noisy, strict=True)])
    assert abs(flipped - 0.1) < 0.015


def test_stochastic_follows_bradley_terry():
    teacher = stochastic(beta=2.0, seed=0)
    a, b = seg([0.0, 0.0]), seg([0.3, 0.2])  # R_b - R_a = 0.5
    share_b = np.mean([v == "b" for v in teacher.label_many([(a, b)] * 4000)])
    assert abs(share_b - 1 / (1 + math.exp(-2.0 * 0.5))) < 0.025


def test_skip_and_equal_thresholds():
    skip_teacher = make_teacher("skip", threshold=1.0)
    assert skip_teacher.label(seg([0.2, 0.3]), seg([0.1, 0.1])) == "skip"
    assert skip_teacher.label(seg([0.8, 0.3]), seg([0.1, 0.1])) == "a"
    equal_teacher = make_teacher("equal", threshold=0.2)
    assert equal_teacher.label(seg([1.0, 0.0]), seg([0.5, 0.4])) == "equal"
    assert equal_teacher.label(seg([1.0, 0.0]), seg([0.5, 0.2])) == "a"
    always_wrong = Teacher(mistake=1.0, equal_threshold=0.2)
    assert always_wrong.label(seg([1.0]), seg([0.9])) == "equal"  # equal is decided after mistakes, as in B-Pref
    assert always_wrong.label(seg([1.0]), seg([0.0])) == "b"


def test_myopic_weighs_the_end_of_a_segment_more():
    early, late = seg([1.0, 0.0, 0.0]), seg([0.0, 0.0, 0.95])
    assert oracle().label(early, late) == "a"
    assert myopic(0.9).label(early, late) == "b"  # 0.81 vs 0.95


def test_teachers_can_judge_by_a_factor_and_combine():
    a = seg([0, 0], object_to_target=[0.5, 0.4])
    b = seg([0, 0], object_to_target=[0.2, 0.1])
    assert Teacher(reward="object_to_target", sign=-1).label(a, b) == "b"
    combined = Teacher(gamma=0.9, mistake=0.2, name="myopic-mistake", seed=0)
    assert combined.source == "script:myopic-mistake"
    assert Teacher(beta=1.0, mistake=0.1).source == "script:teacher-beta1-mistake0.1"
    with pytest.raises(KeyError, match="object_to_target"):
        Teacher(reward="object_to_target").label(seg([0]), seg([0]))


def test_bad_teacher_settings():
    for kwargs in ({"beta": 0}, {"gamma": 1.5}, {"mistake": -0.1}, {"equal_threshold": -1}, {"sign": 2}):
        with pytest.raises(ValueError):
            Teacher(**kwargs)
    with pytest.raises(ValueError, match="unknown teacher"):
        make_teacher("lazy")
    assert bpref_threshold(0.1, 500.0, 50, 500) == pytest.approx(5.0)


def test_teachers_write_labels_to_the_store_like_anyone(tmp_path):
    env = make("metaworld:reach", seed=0, max_episode_steps=40)
    trajectories = collect(env, None, n_episodes=2, seed=0)
    segments = [t.segment(s, s + 20) for t in trajectories for s in (0, 20)]
    store = FeedbackStore(tmp_path / "fb.db")
    store.add_segments(segments)
    queries = [store.get_query(store.add_query("preference", [a.id, b.id])) for a, b in (segments[:2], segments[2:])]
    oracle().answer(store, queries, {s.id: store.get_segment(s.id) for s in segments})
    labels = store.labels(kind="preference")
    assert [lb.source for lb in labels] == ["script:oracle"] * 2
    assert all(q.status == "answered" for q in store.queries())
    for label in labels:
        a, b = (store.get_segment(i) for i in label.segment_ids)
        assert label.value == ("a" if a.env_return > b.env_return else "b")
