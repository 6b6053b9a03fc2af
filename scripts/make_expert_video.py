"""Make the expert video that bi-level reward learning is tried on (assets/videos/metaworld-drawer-close-expert.mp4).

MetaWorld's scripted drawer-close policy closes the drawer in one 150-step episode. The video is not what the
learner sees: it is rendered from a camera turned 10 degrees further round the table (azimuth 160 instead of
150) and with every colour of the scene changed (the red, green and blue channels of the model's materials and
geoms rotated), at 128 pixels, in real time (MetaWorld steps at 80 Hz; every second frame, at 40 fps).

    python scripts/make_expert_video.py [--out assets/videos/metaworld-drawer-close-expert.mp4] [--seed 123]
"""

import argparse
import json
from pathlib import Path

from robofeedback.data.rollout import collect
from robofeedback.data.video import write_video
from robofeedback.envs import make
from robofeedback.envs.experts import expert

TASK = "metaworld:drawer-close"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="assets/videos/metaworld-drawer-close-expert.mp4")
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    env = make(TASK, seed=args.seed, render_size=128, max_episode_steps=150, camera={"azimuth": 160.0})
    model = env.unwrapped.model
    model.mat_rgba[:, :3] = model.mat_rgba[:, [2, 0, 1]]
    model.geom_rgba[:, :3] = model.geom_rgba[:, [2, 0, 1]]
    (episode,) = collect(env, expert(env), n_episodes=1, render=True, seed=args.seed)
    fps = env.metadata["render_fps"] // 2
    path = write_video(episode.frames[::2], args.out, fps=fps)
    meta = {
        "task": TASK,
        "seed": args.seed,
        "fps": fps,
        "frames": len(episode.frames[::2]),
        "success": bool(episode.success.any()),
        "first_success_step": int(episode.success.argmax()),
        "env_return": round(episode.env_return, 1),
        "made_by": "scripts/make_expert_video.py",
    }
    Path(path).with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(path, meta)


if __name__ == "__main__":
    main()
