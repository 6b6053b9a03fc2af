"""VLM-RM's bench section: the typed entry settings, the clip suite's entries, the studies and their report."""

import pytest

from robofeedback import registry
from robofeedback.bench.suite import expand, suite_path
from robofeedback.config import load_yaml
from robofeedback.methods.clip.bench import MODELS, POLICY_CURVES, ClipEntry, quality, report, run_entry

ENTRY = {"method": "clip", "task": "panda:PandaReach-v3", "seed": 0}


def test_entry_settings_refuse_an_unknown_key_naming_the_allowed_ones():
    with pytest.raises(ValueError, match=r"unknown key 'alhpa'; allowed keys: .*alpha.*scale"):
        ClipEntry.from_dict({**ENTRY, "steps": 10, "alhpa": 0.5})
    with pytest.raises(ValueError, match="unknown clip study 'sped'"):
        ClipEntry.from_dict({**ENTRY, "study": "sped"})
    with pytest.raises(ValueError, match="needs steps"):
        ClipEntry.from_dict({**ENTRY, "study": "policy"})
    with pytest.raises(ValueError, match="'task' is required"):
        ClipEntry.from_dict({"method": "clip", "seed": 0, "study": "speed"})
    settings = ClipEntry.from_dict({**ENTRY, "steps": 10, "alpha": 1.0})
    assert (settings.study, settings.alpha, settings.scale, settings.goal) == ("train", 1.0, 10.0, None)


def test_run_entry_checks_the_settings_before_building_anything(tmp_path):
    entry = {"method": "clip", "task": "panda:PandaReach-v3", "seed": 0, "steps": 10, "config": {}, "budget": 5}
    with pytest.raises(ValueError, match="unknown key 'budget'"):
        run_entry(entry, tmp_path, None)
    assert not any(tmp_path.iterdir())


def test_every_suites_clip_entries_are_valid_settings():
    studies = set()
    for name in ("clip", "quick", "full"):
        for entry in expand(load_yaml(suite_path(name))):
            if entry["method"] == "clip":
                studies.add(ClipEntry.from_dict(entry).study)
    assert studies == {"train", "speed", "quality", "policy"}
    assert registry.get("clip").report is report


def test_report_renders_each_study_and_draws_the_policy_curves(tmp_path):
    folder = tmp_path / "runs" / "clip_policy"
    speed_row = {
        "model": "mini",
        "image_size": 96,
        "precision": "fp32",
        "n_envs": 8,
        "encode_image_images_per_s": 500.0,
        "wrapper_reward_path_transitions_per_s": 400.0,
        "wrapper_vs_raw": 0.8,
        "sub_envs_step_and_render_transitions_per_s": 300.0,
        "end_to_end_transitions_per_s": 170.0,
    }
    quality_row = {"task": "panda:PandaReach-v3", "model": "mini", "alpha": 1.0, "frames": 60}
    quality_row.update(spearman_progress=0.5, spearman_success=None, epic_distance=0.4)
    curve = [{"steps": 0, "success_rate": 0.0}, {"steps": 100, "success_rate": 0.5}]
    runs = [
        {"task": "panda:PandaReach-v3", "method": m, "steps": 100, "success_rate": 0.5, "wall_time_s": 3.0}
        for m in ("true reward", "clip")
    ]
    rows = [
        {"config": {"study": "speed"}, "rows": [speed_row]},
        {"config": {"study": "quality"}, "rows": [quality_row], "missing": ["ViT-B-32/openai"]},
        {"config": {"study": "policy"}, "folder": str(folder), "runs": [{**r, "curve": curve} for r in runs]},
        {"config": {}, "mean_env_return": -3.0},
    ]
    text = "\n".join(report(rows))
    assert "| mini (96px) | fp32 | 8 | 500.0 | 400.0 | 0.8 | 300.0 | 170.0 |" in text
    assert "| panda:PandaReach-v3 | mini | 1.0 | 60 | 0.5 | None | 0.4 |" in text
    assert "Not testable here: no ViT-B-32/openai weights in the local cache." in text
    assert "| panda:PandaReach-v3 | clip | 100 | 0.5 | 3.0 |" in text
    assert f"]({POLICY_CURVES})" in text and (tmp_path / POLICY_CURVES).is_file()
    assert report(rows[3:]) == []


@pytest.mark.slow
def test_quality_correlates_each_model_with_progress_and_success():
    goal = "the gripper touches the green target"
    models = [*MODELS[:2], ("ViT-B-32", "nonesuch-weights")]
    result = quality("panda:PandaReach-v3", goal, "a robot arm", episodes=1, models=models)  # nothing to download
    assert {(row["model"], row["alpha"]) for row in result["rows"]} == {
        (model, alpha) for model in ("mini", "ViT-B-32/random") for alpha in (0.0, 0.5, 1.0)
    }
    assert all(-1 <= row["spearman_progress"] <= 1 and row["frames"] > 0 for row in result["rows"])
    assert all(0 <= row["epic_distance"] <= 1 for row in result["rows"])
    assert result["missing"] == ["ViT-B-32/nonesuch-weights"]
