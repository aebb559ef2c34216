"""Load a saved model folder with the Auto classes in a new interpreter, outside this checkout, and report back."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np


SCRIPT = """
import sys, json, numpy as np, torch
from transformers import AutoModel, AutoProcessor
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)
inputs = processor([np.load(sys.argv[2])], sampling_rate=16000, return_tensors="pt")
report = {"module": type(model).__module__}
with torch.no_grad():
    report["logits"] = model(**inputs).logits[0, -1].tolist()
    report["tokens"] = model.generate(**inputs, max_new_tokens=5, do_sample=False)[0].tolist()
{extra}
print(json.dumps(report))
"""


def auto_load_in_fresh_process(folder: Path, clip: np.ndarray, extra: str = "") -> dict:
    """Run `SCRIPT` on `folder` and `clip` (cwd "/", offline, no PYTHONPATH: only the saved code files can serve):
    the model's module, its last-position logits and 5 greedy tokens for the clip, plus what `extra` (statements
    that may read `model`, `inputs`, and add to `report`) adds."""
    clip_path = Path(folder) / "fresh_process_clip.npy"
    np.save(clip_path, clip)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.replace("{extra}", extra), str(folder), str(clip_path)],
        capture_output=True, text=True, cwd="/", check=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["module"].startswith("transformers_modules"), "loaded this checkout's code, not the saved files"
    return report
