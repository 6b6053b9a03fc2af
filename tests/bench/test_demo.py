def test_demo_bench_reports_each_teacher_against_its_target(tmp_path):
    from robofeedback.bench.demo import report

    rows = [
        {
            "teacher": "oracle",
            "seed": s,
            "labels": 100,
            "success_rate": v,
            "wall_time_s": 300.0 + s,
            "git_commit": "abc1234f",
        }
        for s, v in enumerate([1.0, 0.9, 0.8])
    ] + [{"teacher": "mistake", "seed": 0, "labels": 100, "success_rate": 0.5, "wall_time_s": 310.0}]
    rows[0]["true_reward_success_rate"] = 1.0
    text = report(rows, tmp_path).read_text()
    oracle = next(line for line in text.splitlines() if line.startswith("| oracle"))
    assert "| 0, 1, 2 |" in oracle and "0.90 ± 0.08 (1.00, 0.90, 0.80) | 0.9 | 1.00 |" in oracle and "abc1234" in oracle
    mistake = next(line for line in text.splitlines() if line.startswith("| mistake"))
    assert "0.50 (0.50) | 0.8 | - |" in mistake
