"""Make the mini CLIP shipped in assets/mini_clip: render the project's tasks in many states, caption each
frame from the true state, and train a small open_clip model contrastively on the pairs.

    python scripts/train_mini_clip.py [--frames 3000] [--epochs 8] [--seed 0] [--out assets/mini_clip]

Tasks: panda-gym Reach and Push (the gripper and cube are placed directly, by inverse kinematics, to cover
touching / near / far evenly) and MetaWorld reach and drawer-open (scripted experts with noise, and random
actions). Captions say where the gripper is relative to the target or object, whether the cube is on the
target, whether the drawer is open. The loss is CLIP's symmetric cross-entropy with every pair that shares a
caption counted as a positive. It writes the open_clip config, fp16 safetensors weights, and metrics.json with
the zero-shot retrieval accuracy on held-out renders (frames from other env seeds).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from robofeedback.envs import make
from robofeedback.envs.experts import expert

IMAGE_SIZE = 96
MODEL_CFG = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": IMAGE_SIZE, "layers": 4, "width": 128, "head_width": 32, "patch_size": 12},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 3},
}
PREPROCESS_CFG = {
    "size": IMAGE_SIZE,
    "mean": [0.48145466, 0.4578275, 0.40821073],
    "std": [0.26862954, 0.26130258, 0.27577711],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}

# Each attribute: thresholds on a distance (m) -> class, and for each class the captions that say it
# (the first is the canonical one used for zero-shot retrieval).
PROXIMITY = ((0.05, "touch"), (0.12, "near"), (math.inf, "far"))
CAPTIONS = {
    "gripper_target": {
        "touch": ["the gripper touches the {t}", "the gripper is at the {t}", "the robot reached the {t}"],
        "near": ["the gripper is near the {t}", "the gripper is close to the {t}"],
        "far": ["the gripper is far from the {t}", "the gripper is away from the {t}"],
    },
    "cube_target": {
        "touch": ["the cube is on the green target", "the cube is at the target"],
        "near": ["the cube is near the green target", "the cube is close to the target"],
        "far": ["the cube is far from the green target", "the cube is away from the target"],
    },
    "gripper_cube": {
        "touch": ["the gripper touches the cube", "the gripper is at the cube"],
        "near": ["the gripper is near the cube", "the gripper is close to the cube"],
        "far": ["the gripper is far from the cube", "the gripper is away from the cube"],
    },
    "drawer": {
        "open": ["the drawer is open", "the drawer is pulled open"],
        "partly": ["the drawer is partly open", "the drawer is half open"],
        "closed": ["the drawer is closed", "the drawer is shut"],
    },
    "gripper_handle": {
        "touch": ["the gripper holds the drawer handle", "the gripper is at the drawer handle"],
        "far": ["the gripper is away from the drawer handle", "the gripper is far from the drawer handle"],
    },
}
SCENES = {
    "panda:PandaReach-v3": "a panda robot arm",
    "panda:PandaPush-v3": "a panda robot arm and a cube",
    "metaworld:reach": "a sawyer robot arm",
    "metaworld:drawer-open": "a sawyer robot arm and a drawer",
}


def proximity(distance: float) -> str:
    return next(name for limit, name in PROXIMITY if distance < limit)


def _place_gripper(env, position: np.ndarray) -> np.ndarray:
    position = np.array([position[0], position[1], max(position[2], 0.015)])
    for _ in range(4):  # IK from the current pose converges in a few passes
        angles = env._robot.inverse_kinematics(link=11, position=position, orientation=np.array([1.0, 0, 0, 0]))
        env._robot.set_joint_angles(angles)
    return env._robot.get_ee_position()


def _around(rng: np.random.Generator, centre: np.ndarray, kind: str) -> np.ndarray:
    if kind == "touch":
        return centre + rng.normal(0, 0.012, 3)
    if kind == "near":
        direction = rng.normal(size=3)
        return centre + direction / np.linalg.norm(direction) * rng.uniform(0.06, 0.11)
    return rng.uniform([-0.25, -0.25, 0.02], [0.25, 0.25, 0.35])


def sample_panda(spec: str, n: int, seed: int) -> list[tuple[np.ndarray, dict]]:
    rng = np.random.default_rng(seed)
    env = make(spec, seed=seed, render_size=IMAGE_SIZE)
    out = []
    for _ in tqdm(range(n), desc=spec, leave=False):
        env.reset()
        goal = env._task.get_goal()
        if spec.endswith("Reach-v3"):
            ee = _place_gripper(env, _around(rng, goal, rng.choice(["touch", "near", "far"], p=[0.35, 0.25, 0.4])))
            attrs = {"gripper_target": proximity(np.linalg.norm(ee - goal))}
        else:
            kind = rng.choice(["touch", "near", "far"], p=[0.35, 0.2, 0.45])
            cube = goal + np.array([*rng.normal(0, 0.015, 2), 0]) if kind == "touch" else _around(rng, goal, kind)
            cube = np.array([np.clip(cube[0], -0.2, 0.2), np.clip(cube[1], -0.2, 0.2), 0.02])
            env._sim.set_base_pose("object", cube, np.array([0.0, 0.0, 0.0, 1.0]))
            touch = rng.random() < 0.4
            if touch:
                angle = rng.uniform(0, 2 * np.pi)
                aim = cube + np.array([0.04 * np.cos(angle), 0.04 * np.sin(angle), 0.0])
            else:
                aim = _around(rng, cube, rng.choice(["near", "far"]))
            ee = _place_gripper(env, aim)
            attrs = {
                "cube_target": proximity(np.linalg.norm(cube - goal)),
                "gripper_cube": proximity(np.linalg.norm(ee - cube)),
            }
        out.append((env.render(), attrs))
    env.close()
    return out


def sample_metaworld(spec: str, n: int, seed: int, every: int = 8) -> list[tuple[np.ndarray, dict]]:
    rng = np.random.default_rng(seed)
    env = make(spec, seed=seed, render_size=IMAGE_SIZE, max_episode_steps=200)
    out = []
    bar = tqdm(total=n, desc=spec, leave=False)
    while len(out) < n:
        obs, _ = env.reset()
        handle0 = np.asarray(obs)[4:7].copy()
        noise = rng.choice([0.0, 0.3, 1.0, -1.0])  # -1: uniformly random actions
        act = expert(env, noise=max(noise, 0.0), seed=int(rng.integers(1 << 31)))
        start = int(rng.integers(every))
        for t in range(200):
            action = env.action_space.sample() if noise < 0 else act(obs)
            obs, _, terminated, truncated, info = env.step(action)
            if t % every == start:
                if spec.endswith("reach"):
                    attrs = {"gripper_target": proximity(info["factors"]["obj_to_target"])}
                else:
                    opened = np.linalg.norm(np.asarray(obs)[4:7] - handle0)
                    state = "open" if info["success"] else ("closed" if opened < 0.02 else "partly")
                    grip = "touch" if info["factors"]["tcp_to_obj"] < 0.04 else "far"
                    attrs = {"drawer": state, "gripper_handle": grip}
                out.append((env.render(), attrs))
                bar.update()
            if terminated or truncated or len(out) >= n:
                break
    bar.close()
    env.close()
    return out


def target_word(spec: str) -> str:
    return "red target" if spec.startswith("metaworld") else "green target"


def captions_for(spec: str, attrs: dict, rng: np.random.Generator) -> str:
    """One training caption for a frame: one true statement, or all of them joined, sometimes with the scene."""
    statements = [rng.choice(CAPTIONS[name][value]).format(t=target_word(spec)) for name, value in attrs.items()]
    text = " and ".join(statements) if rng.random() < 0.3 else statements[int(rng.integers(len(statements)))]
    return f"{SCENES[spec]}: {text}" if rng.random() < 0.2 else text


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, index: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric loss over B images and their U distinct captions (``index[i]``: image i's caption); a
    caption's positives are all the images it describes."""
    logits = scale * img @ txt.T  # (B, U)
    image_loss = F.cross_entropy(logits, index)
    positives = F.one_hot(index, len(txt)).T.float()  # (U, B)
    log_p = F.log_softmax(logits.T, dim=1)
    text_loss = -((positives * log_p).sum(1) / positives.sum(1)).mean()
    return (image_loss + text_loss) / 2


def make_data(n: int, seed: int) -> tuple[np.ndarray, list[tuple[str, dict]]]:
    frames, meta = [], []
    for k, spec in enumerate(SCENES):
        sampler = sample_panda if spec.startswith("panda") else sample_metaworld
        for frame, attrs in sampler(spec, n, seed * 100 + k):
            frames.append(frame)
            meta.append((spec, attrs))
    return np.stack(frames), meta


@torch.no_grad()
def retrieval_accuracy(model, tokenizer, frames: np.ndarray, meta: list, pixels) -> dict[str, float]:
    """Per task and attribute: how often the canonical caption of the true class scores highest among the
    canonical captions of all classes of that attribute."""
    chunks = [frames[i : i + 256] for i in range(0, len(frames), 256)]
    img = torch.cat([model.encode_image(pixels(chunk), normalize=True) for chunk in chunks])
    out = {}
    for spec in SCENES:
        rows = [i for i, (s, _) in enumerate(meta) if s == spec]
        for name in meta[rows[0]][1]:
            classes = list(CAPTIONS[name])
            prompts = [CAPTIONS[name][c][0].format(t=target_word(spec)) for c in classes]
            txt = model.encode_text(tokenizer(prompts), normalize=True)
            guess = (img[rows] @ txt.T).argmax(1).numpy()
            truth = np.array([classes.index(meta[i][1][name]) for i in rows])
            out[f"{spec} {name}"] = round(float((guess == truth).mean()), 3)
            out[f"{spec} {name} chance"] = round(float(np.bincount(truth).max() / len(truth)), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000, help="training frames per task")
    parser.add_argument("--heldout", type=int, default=300, help="held-out frames per task (other env seeds)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "assets" / "mini_clip"))
    args = parser.parse_args()

    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    start = time.time()
    frames, meta = make_data(args.frames, args.seed)
    test_frames, test_meta = make_data(args.heldout, args.seed + 1)
    print(f"rendered {len(frames)} training and {len(test_frames)} held-out frames in {time.time() - start:.0f} s")

    model = open_clip.model.CLIP(**MODEL_CFG)
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=MODEL_CFG["text_cfg"]["context_length"])
    mean = torch.tensor(PREPROCESS_CFG["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(PREPROCESS_CFG["std"]).view(1, 3, 1, 1)

    def pixels(batch: np.ndarray) -> torch.Tensor:
        return (torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255.0 - mean) / std

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1)
    steps = args.epochs * math.ceil(len(frames) / args.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    history = []
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(frames))
        losses = []
        for i in tqdm(range(0, len(order), args.batch), desc=f"epoch {epoch + 1}/{args.epochs}", leave=False):
            rows = order[i : i + args.batch]
            texts = [captions_for(*meta[r], rng) for r in rows]
            unique = sorted(set(texts))
            index = torch.tensor([unique.index(t) for t in texts])
            img = model.encode_image(pixels(frames[rows]), normalize=True)
            txt = model.encode_text(tokenizer(unique), normalize=True)
            loss = contrastive_loss(img, txt, index, model.logit_scale.exp().clamp(max=100))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        model.eval()
        accuracy = retrieval_accuracy(model, tokenizer, test_frames, test_meta, pixels)
        mean_acc = np.mean([v for k, v in accuracy.items() if not k.endswith("chance")])
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "heldout_accuracy": float(mean_acc)})
        print(f"epoch {epoch + 1}: loss {np.mean(losses):.3f}, held-out retrieval accuracy {mean_acc:.3f}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": MODEL_CFG, "preprocess_cfg": PREPROCESS_CFG}
    (out / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "open_clip_model.safetensors"))
    metrics = {
        "command": f"python scripts/train_mini_clip.py --frames {args.frames} --heldout {args.heldout} "
        f"--epochs {args.epochs} --batch {args.batch} --lr {args.lr} --seed {args.seed}",
        "train_frames": len(frames),
        "heldout_frames": len(test_frames),
        "heldout_retrieval_accuracy": accuracy,
        "history": history,
        "wall_time_s": round(time.time() - start, 1),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(accuracy, indent=2))


if __name__ == "__main__":
    main()
