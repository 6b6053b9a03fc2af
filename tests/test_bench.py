from robofeedback.bench.preference import entries


def test_bench_entries_follow_task_and_teacher_seeds():
    spec = {
        "seeds": [0],
        "budgets": [100],
        "teachers": {"oracle": {}, "mistake": {"eps": 0.1, "seeds": [0]}},
        "tasks": {"a": {"steps": 10, "seeds": [0, 1], "budgets": [50, 100], "rounds": 4}, "b": {"steps": 20}},
    }
    runs = {(e["task"], e["method"], e["teacher"], e["budget"], e["seed"]) for e in entries(spec)}
    assert ("a", "preference", "oracle", 50, 1) in runs and ("a", "preference", "mistake", 50, 0) in runs
    assert ("a", "preference", "mistake", 50, 1) not in runs  # the teacher's own seeds
    assert ("b", "preference", "oracle", 100, 0) in runs and ("b", "true reward", None, 0, 0) in runs
    assert len(runs) == 2 + 2 * 2 + 2 + 1 + 2  # a: true x2, oracle 2x2, mistake 2x1; b: true, oracle, mistake
    mistake = next(e for e in entries(spec) if e["teacher"] == "mistake")
    assert mistake["params"] == {"eps": 0.1} and mistake["rounds"] == 4
