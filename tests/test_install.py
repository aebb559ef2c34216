"""The package as users install it (`pip install .`, not editable), used from a folder that is not the checkout."""

import json
import shutil
import subprocess
import sys
import textwrap

from tests.conftest import FSDD_DIR, REPO_ROOT


LEFT_OUT = shutil.ignore_patterns(".venv", ".git", "runs", "build", "*.egg-info", "__pycache__", ".*_cache")


def run(args: list[str], cwd, env: dict | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=600)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    return result.stdout


def test_a_built_wheel_trains_fsdd_from_an_upstream_folder_and_transcribes(tmp_path):
    """The wheel (built offline from a copy of the source) holds every file the recipes read; nothing is looked up
    next to the package; FSDD comes from a folder in the upstream layout (`recordings/0_jackson_0.wav`, ...)."""
    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT, source, ignore=LEFT_OUT)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "wheel"), str(source)], tmp_path)
    (wheel,) = (tmp_path / "wheel").glob("mel_llm-*.whl")
    run([*pip, "install", "--no-deps", "--target", str(tmp_path / "site"), str(wheel)], tmp_path)
    fsdd = tmp_path / "fsdd"
    shutil.copytree(FSDD_DIR / "recordings", fsdd / "recordings")  # the upstream repository's layout, no manifest
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        "PYTHONPATH": str(tmp_path / "site"),
        "HF_HUB_OFFLINE": "1",
        "HOME": str(elsewhere),
        "PATH": "/usr/bin:/bin",
    }
    config = source / "training" / "configs" / "fsdd_cpu.yaml"
    run(
        [sys.executable, "-m", "training.train", str(config), f"--fsdd_dir={fsdd}", "--max_steps=20",
         f"--output_dir={elsewhere / 'run'}", "--logging_steps=10"],
        elsewhere,
        env,
    )  # fmt: skip
    report = json.loads((elsewhere / "run" / "report.json").read_text())
    assert report["sets"]["fsdd_test"]["n"] == sum(1 for p in fsdd.glob("recordings/*_[0-4].wav"))  # takes 0-4
    clip = sorted((fsdd / "recordings").glob("*.wav"))[0]
    script = f"""
        import json, training
        from transformers import pipeline
        asr = pipeline("automatic-speech-recognition", model={str(elsewhere / "run")!r}, trust_remote_code=True)
        print(json.dumps({{"package": training.__file__, "text": asr({str(clip)!r})["text"]}}))
    """
    out = json.loads(run([sys.executable, "-c", textwrap.dedent(script)], elsewhere, env).strip().splitlines()[-1])
    assert out["package"].startswith(str(tmp_path / "site"))  # the installed copy ran, not the checkout
    assert isinstance(out["text"], str)
