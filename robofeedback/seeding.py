"""The seeds of a run's random streams, all drawn from the run's seed.

One :class:`numpy.random.SeedSequence` of the run's seed spawns a child per named use (the training envs, the
evaluation episodes, the video, ...), keyed by the name, so that no two uses share numbers and adding a stream
changes none of the others. ``STREAMS`` lists the names robofeedback uses.

>>> stream_seed(0, "eval") == stream_seed(0, "eval")
True
>>> len({stream_seed(0, "eval"), stream_seed(0, "video"), stream_seed(1, "eval"), stream_seed(0, "envs", 1)})
4
"""

from __future__ import annotations

import zlib

import numpy as np

STREAMS = {
    "envs": "the training envs, one per sub-env (index i)",
    "eval": "the evaluation env and its episodes (the same episodes at every evaluation)",
    "video": "the final policy's video episodes",
    "status": "the episode shown to people in the annotation app while a run trains",
    "judged": "the episode of a trained policy that a judge or person scores (ICPL's candidates, the bi-level loop)",
    "fresh-pairs": "segment pairs from fresh rollouts, for a learned reward's held-out accuracy",
    "coverage": "the coverage episodes a reward is measured on against the env's own (the benchmark's metrics)",
}


def stream_seed(seed: int, name: str, index: int = 0) -> int:
    """A seed (below 2**31) for the ``index``-th member of the stream ``name`` of the run seeded ``seed``."""
    if name not in STREAMS:
        raise ValueError(f"unknown random stream {name!r}: the streams are {', '.join(STREAMS)}")
    sequence = np.random.SeedSequence(int(seed), spawn_key=(zlib.crc32(name.encode()), int(index)))
    return int(sequence.generate_state(1)[0] >> 1)
