"""The seed's generation test: dream 5 seconds with the checkpoints in a folder.

Run by hand after training (`python tests/test_generation.py [checkpoints]`), it uses the VAE
(best.pt, else last.pt, else the newest vae_epoch{N}.pt) and prior_final.pt it finds there and
writes generated/test_generation.wav. In the test suite it runs on the tiny pair a fixture trains.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf


def find_vae(checkpoint_dir: Path) -> Path:
    for name in ("best.pt", "last.pt"):
        if (checkpoint_dir / name).is_file():
            return checkpoint_dir / name
    epochs = sorted(
        checkpoint_dir.glob("vae_epoch*.pt"),
        key=lambda path: int(re.sub(r"\D", "", path.stem) or 0),
    )
    if not epochs:
        raise FileNotFoundError(f"no VAE checkpoint in {checkpoint_dir}; train one first")
    return epochs[-1]


def generate_five_seconds(checkpoint_dir: Path, output: Path) -> Path:
    from helius.generate.dream import dream_to_file

    prior = checkpoint_dir / "prior_final.pt"
    if not prior.is_file():
        raise FileNotFoundError(f"no prior_final.pt in {checkpoint_dir}; run helius train-prior")
    dream_to_file(find_vae(checkpoint_dir), prior, output, 5.0)
    return output


def test_generation(trained_pair, tmp_path):
    output = generate_five_seconds(trained_pair / "checkpoints", tmp_path / "generated.wav")
    audio, sample_rate = sf.read(str(output), dtype="float32")
    assert sample_rate == 16000 and len(audio) == 5 * 16000
    assert np.isfinite(audio).all() and 0 < np.abs(audio).max() <= 0.9


def test_the_script_form_writes_generated_test_generation_wav(trained_pair, tmp_path):
    completed = subprocess.run(
        [sys.executable, str(Path(__file__)), str(trained_pair / "checkpoints")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert sf.info(str(tmp_path / "generated" / "test_generation.wav")).frames == 5 * 16000


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("checkpoints")
    written = generate_five_seconds(folder, Path("generated") / "test_generation.wav")
    print(f"wrote {written}")
