"""``robofeedback envs``: the families, their tasks, and one task described."""

import json

from robofeedback.cli import main


def test_envs_lists_every_family(capsys):
    assert main(["envs", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["panda"]["installed"] and "PandaReach-v3" in info["panda"]["ids"]
    assert "drawer-open" in info["metaworld"]["ids"] and "AntBulletEnv-v0" in info["bullet"]["ids"]
    assert main(["envs", "--family", "bullet"]) == 0
    assert "bullet:HopperBulletEnv-v0" in capsys.readouterr().out


def test_describe_prints_spaces_and_factors(capsys):
    assert main(["envs", "--describe", "bullet:AntBulletEnv-v0"]) == 0
    out = capsys.readouterr().out
    assert "action space:      Box(-1.0, 1.0, (8,), float32)" in out
    assert "+ progress:" in out and "- joints_at_limit:" in out
    assert main(["envs", "--describe", "metaworld:reach", "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["factors"]["obj_to_target"]["sign"] == -1 and described["family"] == "metaworld"
