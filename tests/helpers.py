"""Plain helpers that several test modules share (their shared fixtures are in the conftest.py files)."""

import numpy as np

CHROMIUM = "/usr/bin/chromium"
TASK = "panda:PandaReach-v3"


def negative_distance(obs, action, next_obs, info):
    return -info["factors"]["ee_to_target"]


def pixel(env, point):
    uv, depth = env.camera.project(np.asarray(point))
    assert depth > 0
    return int(round(uv[1])), int(round(uv[0]))


def preference_queries(store, clips, n):
    segments, _ = clips
    return [store.add_query("preference", [segments[i].id, segments[i + 1].id], run="r") for i in range(n)]
