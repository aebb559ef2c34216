"""training.progress: a line per interval (and at the end) when stderr is a log file, every item passed through."""

from training.progress import progress


def test_a_log_file_gets_periodic_lines_not_a_redrawn_bar(capfd):
    assert list(progress(range(5), 5, "work", interval_s=0.0)) == [0, 1, 2, 3, 4]
    lines = capfd.readouterr().err.splitlines()
    assert lines == [f"work: {done}/5 (0 s)" for done in range(1, 6)]
    assert list(progress(iter("ab"), 2, "slow", interval_s=3600)) == ["a", "b"]
    assert capfd.readouterr().err.splitlines() == ["slow: 2/2 (0 s)"]  # only the closing line
