"""Bi-level reward learning from an expert video (Mahesheka, Xie, Wang, Jin 2024, arXiv 2410.09286).

    upper level:  min_R  L(xi(pi*_R), V_expert)              how far the learner's motion xi is from the video
    lower level:  pi*_R = argmax_pi  E_pi[ sum_t R(s_t, a_t) ]   the policy that the reward code R teaches

No gradient is taken: the chain rule dL/dR = dL/dxi * dxi/dR is followed in words. The upper level, a judge
(a vision chat model, or the offline CLIP + time-warping judge), compares a video of the learner with the
expert's video and says how the learner's motion should change (dL/dxi). The lower level, an LLM (or, offline,
a mapping of the judge's measurements onto factor weights), turns that feedback into new reward code
(dxi/dR), SB3 trains a policy on it, and the loop repeats. The motion is never retargeted: the expert may be
a person, an animal or another robot, filmed from anywhere.

Each iteration ``i`` writes ``out_dir/iter<i>/``: ``code.py`` (with the LLM's ``prompt.json``, its
``response.txt``, and ``attempts.json``: every answer, and why a refused one was refused), the training run,
``learner.mp4``, ``side_by_side.mp4`` (learner left, expert right), ``feedback.txt`` and ``result.json``
(similarity, the task's own success and return, the judge's measurements). A finished iteration is never
redone, so a crashed or stopped run continues where it stopped.
The loop trains policies (through :func:`robofeedback.methods.reward_code.train_candidate`); its lower levels keep
:class:`~robofeedback.protocols.RewardUpdater`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from robofeedback.data.trajectory import Trajectory
from robofeedback.data.video import VideoError, read_video, resample, side_by_side, write_video
from robofeedback.envs import make, policy_env_kwargs
from robofeedback.feedback.clip_model import MINI_CLIP, ClipModel
from robofeedback.feedback.llm import OpenAICompatible, Replay
from robofeedback.feedback.vlm import ChatVLMJudge, ClipVideoJudge
from robofeedback.methods.reward_code import train_candidate
from robofeedback.protocols import RewardFunction, RewardUpdater, Transitions
from robofeedback.rewards.code import INFO_KEYS, RewardCodeError, check_info_keys, extract_code
from robofeedback.rewards.codegen import (
    FEEDBACK_TIPS,
    SYSTEM_PROMPT,
    describe_env,
    factor_code,
    parse_weights,
    probe_transitions,
    smoke_test,
    trace_text,
)


def load_expert_video(
    path: str | Path,
    fps: float,
    start: float | None = None,
    end: float | None = None,
    frames_fps: float | None = None,
) -> np.ndarray:
    """The expert's video as ``(T, H, W, 3)`` uint8 frames at ``fps``: a video file (mp4, webm, anything ffmpeg
    reads), trimmed to ``start`` .. ``end`` seconds, or a folder of image frames recorded at ``frames_fps``
    (default: already at ``fps``). Bad input is a :class:`~robofeedback.data.video.VideoError` naming the problem."""
    path = Path(path)
    if not isinstance(fps, (int, float)) or not fps > 0:
        raise VideoError(f"fps must be a positive number, got {fps!r}")
    if not path.exists():
        raise VideoError(f"no expert video at {path} (give a video file or a folder of frames)")
    if path.is_dir():
        if start is not None or end is not None:
            raise VideoError(f"{path} is a folder of frames: start and end apply only to video files")
        frames = read_video(path)
        if frames_fps is not None:
            frames = resample(frames, frames_fps, fps)
    else:
        for name, value in (("start", start), ("end", end)):
            if value is not None and (not isinstance(value, (int, float)) or value < 0):
                raise VideoError(f"{name} must be a number of seconds >= 0, got {value!r}")
        frames = read_video(path, fps=fps, start=start, end=end)
    if len(frames) < 2:
        raise VideoError(f"the expert video {path} gives {len(frames)} frame at {fps:g} fps: at least 2 are needed")
    return frames


class ExpertFrameReward(RewardFunction):
    """The bi-level paper's VLM-only arm, as this machine can run it: the judge's image model used directly as the
    reward, with no lower level. r_t = cos(e(frame after step t), e_goal), e the judge's CLIP image embedding and
    e_goal the normalised mean embedding of the expert video's ``last`` frames (where the expert ends up)."""

    needs_frames = True

    def __init__(
        self,
        expert: str | Path,
        fps: float = 20.0,
        model: str = MINI_CLIP,
        pretrained: str | None = None,
        device: str | None = None,
        last: int = 5,
    ):
        self.clip = ClipModel(model, pretrained, device)
        frames = load_expert_video(expert, fps)
        goal = self.clip.embed_images(frames[-last:]).mean(0)
        self.goal = (goal / goal.norm()).numpy()

    def reward(self, batch: Transitions) -> np.ndarray:
        return self.clip.embed_images(batch.frames).numpy() @ self.goal


def weight_groups(factors: dict[str, int]) -> dict[str, list[str]]:
    """The env's named factors by what they say about a motion: ``effort`` (control and energy costs), ``posture``
    (staying up) and ``task`` (everything else: distances, progress, grasping)."""
    effort = [k for k in factors if any(word in k for word in ("ctrl", "electricity", "energy", "effort", "torque"))]
    posture = [k for k in factors if k == "alive" and k not in effort]
    return {"effort": effort, "posture": posture, "task": [k for k in factors if k not in effort + posture]}


class FeedbackWeightUpdater:
    """The offline lower level (not an LLM): rewards are weighted sums of the env's named factors (as ICPL's offline
    proposer writes them), and the offline judge's measurements move the weights.

    The first reward weighs every factor by its sign. Then, from the judge's comparison: a learner that barely
    moves or is slower than the expert gets its effort costs scaled by (1 - ``step``) and its task terms by
    (1 + ``step``); one that moves far more or faster gets its effort costs scaled by (1 + ``step``); missing or
    poorly matched later phases, or a motion that ends away from the expert's, scale the task terms by
    (1 + ``step``); a motion lower than the expert's scales the posture terms by (1 + ``step``). When the
    similarity falls below the best so far, it goes back to the best weights and halves ``step``.
    """

    name = "offline:feedback-weights"

    def __init__(self, env, step: float = 0.5):
        self.factors = {name: f.sign for name, f in env.factor_info.items()}
        if not self.factors:
            raise ValueError(f"{env.spec_name} has no named reward factors for the offline lower level to weigh")
        if not 0 < step < 1:
            raise ValueError(f"step must be in (0, 1), got {step}")
        self.groups = weight_groups(self.factors)
        self.step = float(step)
        self.best: dict[str, Any] | None = None  # the iteration with the highest similarity so far

    def initial(self, seed: int) -> tuple[str, str, list | None]:
        weights = {k: float(s) for k, s in self.factors.items()}
        return factor_code(weights), "(the first reward of the offline lower level: every factor by its sign)", None

    def observe(self, record: dict[str, Any]) -> None:
        """Take in a finished iteration (its code and similarity) before the next proposal."""
        if self.best is None or record["similarity"] > self.best["similarity"]:
            self.best = record
        elif record["similarity"] < self.best["similarity"]:
            self.step /= 2

    def propose(self, record: dict[str, Any], seed: int) -> tuple[str, str, list | None]:
        details = record.get("details") or {}
        if "comparison" not in details:
            raise ValueError(
                "the offline lower level reads the offline judge's measurements (ClipVideoJudge); a chat VLM's "
                "free-text feedback needs an LLM to turn it into reward code"
            )
        notes = []
        if self.best is not None and record["similarity"] < self.best["similarity"]:
            notes.append(
                f"similarity {record['similarity']:.3f} is below the best, {self.best['similarity']:.3f} (iteration "
                f"{self.best['iteration']}): from its weights again, with the step halved to {self.step:.3g}"
            )
            record, details = self.best, self.best["details"]
        weights = parse_weights(record["code"])
        c = details["comparison"]
        scale = {k: 1.0 for k in weights}

        def move(group: str, factor: float, why: str) -> None:
            if self.groups[group]:
                for k in self.groups[group]:
                    scale[k] *= factor
                notes.append(f"{group} weights x{factor:.3g} ({why})")

        if c["amount_ratio"] < 0.5 or c["speed_ratio"] < 0.67:
            move("effort", 1 - self.step, "the learner moves less or slower than the expert")
            move("task", 1 + self.step, "the learner moves less or slower than the expert")
        elif c["amount_ratio"] > 2.0 or c["speed_ratio"] > 1.5:
            move("effort", 1 + self.step, "the learner moves more or faster than the expert")
        later = [p for p in details.get("phases", [])[1:] if p["status"] != "matched"]
        if later or c["end_gap"] > 0.15:
            why = f"phases {[p['phase'] for p in later]} not matched" if later else "it ends away from the expert"
            move("task", 1 + self.step, why)
        if c["height"] == "lower":
            move("posture", 1 + self.step, "its motion is lower than the expert's")
        new = {k: w * scale[k] for k, w in weights.items()}
        note = "; ".join(notes) or "no change asked for: the weights stay"
        return factor_code(new), f"(offline lower level, not an LLM) {note}", None


class LLMRewardUpdater:
    """The lower level with a chat model (``client.complete``): it gets the env's description, the current reward
    code with its component traces, and the upper level's feedback, and writes the updated reward code."""

    def __init__(self, client, task: str, env, temperature: float = 0.7, info_keys: Sequence[str] = INFO_KEYS):
        self.client, self.task, self.temperature = client, task, temperature
        self.environment = describe_env(env, info_keys)
        self.similarities: list[float] = []
        self.name = f"llm:{getattr(client, 'model', 'llm')}"

    def _ask(self, user: str, seed: int) -> tuple[str, str, list]:
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
        (response,) = self.client.complete(messages, n=1, temperature=self.temperature, seed=seed)
        try:
            code = extract_code(response)
        except RewardCodeError:
            code = ""
        return code, response, messages

    def initial(self, seed: int) -> tuple[str, str, list]:
        return self._ask(
            f"The task: {self.task}\n\n{self.environment}\n\nA video of an expert doing the task will be compared "
            "with videos of the policy trained on your reward. Write the first reward function.",
            seed,
        )

    def observe(self, record: dict[str, Any]) -> None:
        self.similarities.append(record["similarity"])

    def propose(self, record: dict[str, Any], seed: int) -> tuple[str, str, list]:
        history = ", ".join("n/a" if math.isnan(s) else f"{s:.3f}" for s in self.similarities)
        return self._ask(
            f"The task: {self.task}\n\n{self.environment}\n\n"
            f"The current reward function:\n```python\n{record['code']}```\n"
            f"Its components over training (about 10 points):\n{trace_text_of(record)}\n\n"
            "A judge watched a video of the policy trained on this reward next to a video of an expert doing the "
            f"task, and wrote:\n\n{record['feedback']}\n\n"
            f"Similarity to the expert so far, one per iteration (1 = like the expert): {history}.\n\n"
            "Change the reward function so that the learner's motion becomes like the expert's. " + FEEDBACK_TIPS,
            seed,
        )


def trace_text_of(record: dict[str, Any]) -> str:
    """An iteration's reward-component trace as the prompt shows it."""
    return trace_text(record.get("trace") or {})


class BilevelVideoReward:
    """The bi-level loop on one env: each iteration trains a policy on the current reward code for
    ``train_steps`` env steps, renders one episode of it, has ``judge`` compare it with the expert video, and has
    the lower level (``llm``, a chat client such as ``OpenAICompatible`` or ``Replay``; ``None`` for
    :class:`FeedbackWeightUpdater`) update the code.

    ``expert`` is a video file or a folder of frames (``start`` / ``end`` trim a file, in seconds;
    ``frames_fps`` is a folder's frame rate); both videos are compared at ``fps`` frames per second.
    ``judge`` defaults to the offline :class:`~robofeedback.feedback.vlm.ClipVideoJudge`; a
    :class:`~robofeedback.feedback.vlm.ChatVLMJudge` works too (its free text needs an ``llm``).
    ``config`` is the training config (as for ``train``). Code that the sandbox refuses or that fails on a few
    real transitions is asked for again, at most ``max_rounds`` times per iteration. ``info_keys`` are the keys of
    the env's info the reward code reads (the named reward factors and the agent's position by default).
    """

    def __init__(
        self,
        env: str,
        expert: str | Path,
        task: str,
        judge: ClipVideoJudge | ChatVLMJudge | None = None,
        llm: OpenAICompatible | Replay | None = None,
        train_steps: int = 5000,
        config: dict | None = None,
        out_dir: str | Path = "runs/video-reward",
        seed: int = 0,
        fps: float = 20.0,
        start: float | None = None,
        end: float | None = None,
        frames_fps: float | None = None,
        max_rounds: int = 3,
        temperature: float = 0.7,
        info_keys: Sequence[str] = INFO_KEYS,
    ):
        if not isinstance(task, str) or not task.strip():
            raise ValueError(f"task must describe the task in words, got {task!r}")
        if train_steps < 1 or max_rounds < 1:
            raise ValueError(f"train_steps and max_rounds must be >= 1, got {train_steps}, {max_rounds}")
        self.expert_path = str(expert)
        self.expert = load_expert_video(expert, fps, start, end, frames_fps)
        self.spec, self.task, self.seed, self.fps = env, task.strip(), seed, float(fps)
        self.info_keys = check_info_keys(info_keys)
        self.config = {"video_episodes": 1, **dict(config or {})}
        env_kwargs = policy_env_kwargs(env, self.config.get("env_kwargs", {}))
        self.env = make(env, seed=seed, **env_kwargs)
        self.env_fps = float(self.env.metadata.get("render_fps") or 25)
        self.judge = judge if judge is not None else ClipVideoJudge()
        if llm is not None:
            self.updater: RewardUpdater = LLMRewardUpdater(llm, self.task, self.env, temperature, self.info_keys)
        elif isinstance(self.judge, ClipVideoJudge):
            self.updater = FeedbackWeightUpdater(self.env)
        else:
            raise ValueError(
                f"{type(self.judge).__name__} answers in free text: give llm= to turn it into reward code (the "
                "offline lower level reads only ClipVideoJudge's measurements)"
            )
        self.train_steps, self.max_rounds = train_steps, max_rounds
        self.out_dir = Path(out_dir)
        self._probe = None

    def run(self, iterations: int = 5) -> dict[str, Any]:
        """Run up to ``iterations`` iterations (finished ones in ``out_dir`` are kept, not redone); returns (and
        writes to ``summary.json``) the similarity, success and return per iteration and the best iteration."""
        if not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        records: list[dict[str, Any]] = []
        for i in tqdm(range(iterations), desc=f"video reward on {self.spec}", unit="iteration"):
            folder = self.out_dir / f"iter{i}"
            done = folder / "result.json"
            if done.exists():
                record = json.loads(done.read_text())
            else:
                code = self._code(i, records[-1] if records else None)
                record = self._iteration(i, code, folder)
                done.write_text(json.dumps(record, indent=2))
            self.updater.observe(record)
            records.append(record)
            self._write_summary(records)
        return json.loads((self.out_dir / "summary.json").read_text())

    def _code(self, i: int, previous: dict[str, Any] | None) -> str:
        """Iteration ``i``'s reward code: the one already written there (a resumed run), or the lower level's."""
        folder = self.out_dir / f"iter{i}"
        if (folder / "code.py").exists():
            return (folder / "code.py").read_text()
        folder.mkdir(parents=True, exist_ok=True)
        if self._probe is None:
            self._probe = probe_transitions(self.env, self.seed)
        attempts = []
        for round_ in range(self.max_rounds):
            seed = self.seed + 1000 * i + round_
            if previous is None:
                code, response, prompt = self.updater.initial(seed)
            else:
                code, response, prompt = self.updater.propose(previous, seed)
            if prompt is not None:
                (folder / "prompt.json").write_text(json.dumps(prompt, indent=2))
            error = smoke_test(code, self._probe, self.info_keys)
            attempts.append({"response": response, "error": error})
            (folder / "attempts.json").write_text(json.dumps(attempts, indent=2))
            if error is None:
                (folder / "response.txt").write_text(response)
                (folder / "code.py").write_text(code)
                return code
        raise RuntimeError(
            f"iteration {i}: no usable reward code in {self.max_rounds} answers of {self.updater.name} "
            f"(see {folder / 'attempts.json'}): {[a['error'] for a in attempts]}"
        )

    def _iteration(self, i: int, code: str, folder: Path) -> dict[str, Any]:
        result = train_candidate(
            self.spec,
            code,
            self.train_steps,
            self.seed,
            str(folder / "train"),
            self.config,
            resume=True,
            frames=True,
            info_keys=self.info_keys,
        )
        if "error" in result:
            raise RewardCodeError("training", f"iteration {i}: {result['error']}")
        episode = Trajectory.load(folder / "train" / "final_episode.npz")
        learner = resample(episode.frames, self.env_fps, self.fps)
        feedback = self.judge.compare_videos(learner, self.expert, self.fps)
        write_video(learner, folder / "learner.mp4", fps=self.fps)
        write_video(
            side_by_side(learner, self.expert, ("learner", "expert")), folder / "side_by_side.mp4", fps=self.fps
        )
        (folder / "feedback.txt").write_text(feedback.text + "\n")
        return {
            "iteration": i,
            "code": code,
            "similarity": feedback.similarity,
            "judge": feedback.judge,
            "feedback": feedback.text,
            "details": feedback.details,
            "success_rate": result["success_rate"],
            "mean_env_return": result["mean_env_return"],
            "final_episode_success": bool(episode.success.any()) if episode.success is not None else None,
            "trace": result["trace"],
            "updater": self.updater.name,
        }

    def _write_summary(self, records: list[dict[str, Any]]) -> None:
        scored = [r for r in records if not math.isnan(r["similarity"])]
        best = max(scored, key=lambda r: r["similarity"]) if scored else records[-1]
        summary = {
            "env": self.spec,
            "task": self.task,
            "expert": self.expert_path,
            "fps": self.fps,
            "judge": records[-1]["judge"],
            "updater": self.updater.name,
            "train_steps": self.train_steps,
            "seed": self.seed,
            "iterations": [
                {k: r[k] for k in ("iteration", "similarity", "success_rate", "mean_env_return")} for r in records
            ],
            "best": {"iteration": best["iteration"], "similarity": best["similarity"], "code": best["code"]},
        }
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
