"""Distributed training: `torchrun --nproc_per_node=2` on the CPU (gloo) against one process.

The DDP runs are real: `python -m torch.distributed.run --standalone` (a free port on
localhost) starts two processes running tests/train/ddp_worker.py or `helius train`. The
tests check that every rank holds the same parameters after every optimiser step, that they
match one process trained with the same global batch (batch_size x 2), that only rank 0 writes,
and that a signal reaching one rank stops all of them together, ready to resume.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helius.cli import main
from helius.models.checkpoint import load_checkpoint

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with the gloo backend is not available in this torch build",
)

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("ddp_worker.py")
TIMEOUT = 120  # seconds; a hung collective fails the test instead of blocking CI
# Set by torchrun; a child of a process started by torchrun must not inherit them.
LAUNCHER_VARIABLES = (
    "RANK",
    "LOCAL_RANK",
    "GROUP_RANK",
    "ROLE_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "ROLE_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)

# 40 items; per rank 20, in micro-batches of 2 accumulated in pairs: 5 steps per epoch, as for
# one process with micro-batches of 4.
TOY = [
    "train.epochs=2",
    "train.grad_accum_steps=2",  # DDP's no_sync on the first micro-batch of each pair
    "train.grad_clip=0.5",  # clipped after the all-reduce, so alike on every rank
    "train.learning_rate=0.01",
    "train.val_every_steps=2",  # rank 0 validates, every rank gets the score...
    "train.lr_schedule=plateau",  # ...and steps its LR on it (rank 1 with inf would diverge)
    "train.plateau_patience=1",
    "train.log_audio_every_steps=3",
]
TOY_STEPS = 10


def run(args: list[str], cwd: Path, ranks: int = 2) -> subprocess.CompletedProcess:
    """`python -m torch.distributed.run --standalone --nproc_per_node=2 ARGS` (ranks=1: just
    `python ARGS`), on one thread per process. Fails the test on a non-zero exit or a timeout
    (then killing torchrun and its workers: they run in a session of their own)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in LAUNCHER_VARIABLES and not k.startswith("TORCHELASTIC")
    }
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable]
    if ranks > 1:
        command += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
        command += ["--max_restarts=0"]
    command += args
    cwd.mkdir(parents=True, exist_ok=True)
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            pytest.fail(f"timed out after {TIMEOUT} s: {command}\n{stdout}\n{stderr[-5000:]}")
    # The workers' tracebacks come first, torchrun's own summary last: show both ends.
    report = stderr if len(stderr) < 8000 else f"{stderr[:5000]}\n[...]\n{stderr[-3000:]}"
    assert process.returncode == 0, f"exit {process.returncode}\n{stdout}\n{report}"
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def train_dirs(root: Path) -> list[str]:
    return [
        f"train.checkpoint_dir={root / 'ckpt'}",
        f"train.log_dir={root / 'runs'}",
        "train.device=cpu",
    ]


def sets(overrides: list[str]) -> list[str]:
    return [arg for override in overrides for arg in ("--set", override)]


def ddp(task: str, root: Path, overrides: list[str], *extra: str) -> tuple[list[dict], str]:
    """ddp_worker.py on two ranks; (what each rank recorded, by rank; torchrun's stdout)."""
    args = [str(WORKER), task, str(root / "out"), *extra]
    result = run([*args, *sets([*train_dirs(root), *overrides])], root / "cwd")
    return [torch.load(root / "out" / f"rank{r}.pt") for r in range(2)], result.stdout


def alone(task: str, root: Path, overrides: list[str]) -> dict:
    """The same training in one process without torchrun (no process group). A process of its
    own on one thread, as each rank: the same kernels, so only the gradient average rounds
    differently."""
    args = [str(WORKER), task, str(root / "out")]
    run([*args, *sets([*train_dirs(root), *overrides])], root / "cwd", ranks=1)
    return torch.load(root / "out" / "rank0.pt")


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def assert_only_rank0_wrote(root: Path, ranks: list[dict], checkpoints: set[str]) -> None:
    """Under root: rank 0's checkpoints and TensorBoard files and each rank's record, nothing
    else (and nothing in the working directory)."""
    written = files_under(root)
    events = {name for name in written if name.startswith("runs/")}
    # events.out.tfevents.<time>.<host>.<pid>.<n>
    assert events and all(f".{ranks[0]['pid']}." in name for name in events), events
    assert ranks[0]["pid"] != ranks[1]["pid"]
    expected = {f"ckpt/{name}" for name in checkpoints} | {"out/rank0.pt", "out/rank1.pt"}
    assert written - events == expected


def assert_ranks_identical(ranks: list[dict], steps: int) -> None:
    assert [len(r["history"]) for r in ranks] == [steps, steps]
    for step in range(steps):
        for name, value in ranks[0]["history"][step].items():
            assert torch.equal(value, ranks[1]["history"][step][name]), (step, name)


def assert_matches(ranks: list[dict], single: dict, steps: range, atol: float = 1e-6) -> None:
    """Rank 0's parameters after each of `steps` equal one process's to float32 rounding."""
    for step in steps:
        for name, value in single["history"][step].items():
            torch.testing.assert_close(
                ranks[0]["history"][step][name],
                value,
                rtol=1e-5,
                atol=atol,
                msg=lambda text, step=step, name=name: f"step {step}, {name}: {text}",
            )


@pytest.fixture(scope="module")
def toy_alone(tmp_path_factory) -> dict:
    """The toy trained by one process with the global batch: micro-batches of 4."""
    return alone("toy", tmp_path_factory.mktemp("toy_alone"), [*TOY, "train.batch_size=4"])


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """10 train / 10 val one-second 16 kHz segments of two demo textures."""
    root = tmp_path_factory.mktemp("ddp_data")
    assert main(["demo-data", str(root / "demo"), "--n", "2", "--textures", "2"]) == 0
    prep = ["prep", "--input_dir", str(root / "demo" / "textures"), "--output_dir"]
    prep += [str(root / "data"), "--segment_length", "1.0", "--sample_rate", "16000"]
    assert main([*prep, "--workers", "1"]) == 0
    return root / "data"


def test_ddp_on_two_processes_matches_one_process_with_the_same_global_batch(tmp_path, toy_alone):
    ranks, stdout = ddp("toy", tmp_path, [*TOY, "train.batch_size=2"])

    assert [r["world_size"] for r in ranks] == [2, 2] and toy_alone["world_size"] == 1
    for result in (*ranks, toy_alone):
        assert (result["step"], result["epoch"]) == (TOY_STEPS, 2)
    assert_ranks_identical(ranks, TOY_STEPS)
    assert_matches(ranks, toy_alone, range(TOY_STEPS))
    # Each rank's loss is the mean over its half of the global batch.
    for step, expected in enumerate(toy_alone["losses"]):
        mean = (ranks[0]["losses"][step] + ranks[1]["losses"][step]) / 2
        assert mean == pytest.approx(expected, rel=1e-5), step
    # Rank 1 never validates: its best score is rank 0's, broadcast.
    assert ranks[1]["best_score"] == ranks[0]["best_score"]
    assert ranks[0]["best_score"] == pytest.approx(toy_alone["best_score"], rel=1e-5)
    assert ranks[0]["noise_probe"] != ranks[1]["noise_probe"]  # each rank its own noise

    assert_only_rank0_wrote(
        tmp_path, ranks, {"last.pt", "best.pt", "toy_epoch1.pt", "toy_epoch2.pt"}
    )
    last = load_checkpoint(tmp_path / "ckpt" / "last.pt", kind="toy")
    assert (last["step"], last["epoch"]) == (TOY_STEPS, 2)
    for name, value in ranks[0]["model"].items():
        assert torch.equal(last["model"][name], value), name
    # torch asks for destroy_process_group before exit (NCCL warns otherwise).
    for rank in (0, 1):
        assert f"rank {rank} left the process group: True" in stdout


def test_a_signal_reaching_one_rank_stops_all_ranks_together_and_they_resume(tmp_path, toy_alone):
    """SIGINT/SIGTERM reach each process at its own moment. A rank stopping alone would leave
    the others waiting in the next all-reduce (and nothing saved unless it was rank 0). The
    resume runs in the same processes: fit must return only once rank 0's last.pt is on disk,
    and a second fit must reuse the process group."""
    ranks, _ = ddp(
        "toy",
        tmp_path,
        [*TOY, "train.batch_size=2"],
        *("--interrupt_rank", "1", "--interrupt_step", "3"),
        *("--resume_set", "train.epochs=2"),  # then fit(resume=True) in the same processes
    )
    for result in ranks:
        assert result["first_fit"] == {"step": 4, "interrupted": True}
        assert (result["step"], result["epoch"], result["interrupted"]) == (TOY_STEPS, 2, False)
    # The resumed run continues exactly: mid-epoch, each rank on its own share of the data.
    assert_ranks_identical(ranks, TOY_STEPS)
    assert_matches(ranks, toy_alone, range(TOY_STEPS))
    # last.pt holds rank 0's RNG state; after resuming, ranks still draw different noise.
    resumed = 2 * 4  # loss calls before the interruption: 4 steps of 2 micro-batches
    assert ranks[0]["noise_probe"][resumed:] != ranks[1]["noise_probe"][resumed:]
    assert_only_rank0_wrote(
        tmp_path, ranks, {"last.pt", "best.pt", "toy_epoch1.pt", "toy_epoch2.pt"}
    )
    assert load_checkpoint(tmp_path / "ckpt" / "last.pt")["step"] == TOY_STEPS


def test_the_vae_under_ddp_keeps_ranks_identical_and_matches_one_process(tmp_path, tiny_data):
    """The real VAE, made deterministic: no posterior sampling, no noise branch, and no free
    bits (they clamp the batch-mean KL per dimension, which does not split over ranks).

    Its log-magnitude STFT loss amplifies float rounding: a 1e-7 change of the weights moves
    the gradient by tens of percent, so even one process on 1 vs 2 threads drifts ~5e-3 apart
    within four steps. One process is thus compared on the first update and on the loss after
    it; the ranks must agree exactly at every step.
    """
    common = [
        f"data.train_index={tiny_data / 'train_index.txt'}",
        f"data.val_index={tiny_data / 'val_index.txt'}",
        "model.sample_posterior=false",
        "model.wave.noise_branch=false",
        "train.kl.free_bits=0",
        "train.crop_seconds=0.5",  # random crops, seeded per (epoch, item): alike on all ranks
        "train.epochs=2",  # 10 items: 2 steps per epoch either way
        "train.val_every_steps=2",
    ]
    ranks, _ = ddp("vae", tmp_path / "ddp", [*common, "train.batch_size=2"])
    single = alone("vae", tmp_path / "one", [*common, "train.batch_size=4"])

    for result in (*ranks, single):
        assert (result["step"], result["epoch"]) == (4, 2)
    assert_ranks_identical(ranks, 4)
    # Adam's first update is lr * g / (|g| + eps) per weight: +-lr whatever the gradient's size,
    # so a weight whose gradient nearly cancels to zero (where the order of the float sums,
    # per rank or in one process, decides its last digits) can move by a fraction of lr.
    # Seen at 1.4 % on one weight of 4096 in a CI run: 5 % of one step still fails any real
    # mismatch (a wrong average or a skipped all-reduce moves weights by whole steps).
    assert_matches(ranks, single, range(1), atol=5e-2 * 0.001)
    for step in range(2):
        mean = (ranks[0]["losses"][step] + ranks[1]["losses"][step]) / 2
        assert mean == pytest.approx(single["losses"][step], rel=1e-5), step
    assert ranks[1]["best_score"] == ranks[0]["best_score"]
    assert_only_rank0_wrote(
        tmp_path / "ddp", ranks, {"last.pt", "best.pt", "vae_epoch1.pt", "vae_epoch2.pt"}
    )


def test_helius_train_runs_under_torchrun(tmp_path, tiny_data):
    overrides = [
        *train_dirs(tmp_path),
        f"data.train_index={tiny_data / 'train_index.txt'}",
        f"data.val_index={tiny_data / 'val_index.txt'}",
        "train.batch_size=2",
        "train.max_steps=3",
    ]
    tiny = str(REPO / "configs" / "tiny.yaml")
    result = run(
        ["-m", "helius", "train", "--config", tiny, "--quiet", *sets(overrides)], tmp_path / "cwd"
    )
    assert "trained wave_vae to step 3" in result.stdout
    written = files_under(tmp_path)
    assert {name for name in written if name.startswith("ckpt/")} == {
        "ckpt/last.pt",
        "ckpt/best.pt",
        "ckpt/vae_epoch1.pt",  # 10 items, 2 per rank and batch: 2 steps per epoch
    }
    assert len([name for name in written if name.startswith("runs/")]) == 1
    assert not any(name.startswith("cwd/") for name in written)
    payload = load_checkpoint(tmp_path / "ckpt" / "last.pt", kind="vae")
    assert payload["step"] == 3 and payload["config"]["train"]["batch_size"] == 2
