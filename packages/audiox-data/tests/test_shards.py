"""Shard writing: kill-and-resume loses and duplicates nothing; idempotent; CLI errors are one line."""

import os
import signal
import subprocess
import sys
import tarfile
import time

import pytest

from audiox.data.cli import main
from audiox.data.shards import list_shards, shard_keys, synth_shards
from audiox.data.synth import SynthConfig

ARGS = [
    "--clips",
    "40",
    "--seed",
    "9",
    "--shard-size",
    "4",
    "--duration",
    "2",
    "--image-size",
    "16",
    "--t2a-prompts",
    "8",
    "--v2a-prompts",
    "2",
    "--t2m-prompts",
    "2",
    "--quiet",
]


def _cmd(out):
    return [sys.executable, "-m", "audiox.data.cli", "synth", "--out", str(out), *ARGS]


def _members(path) -> dict[str, bytes]:
    with tarfile.open(path) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers()}


@pytest.mark.slow  # starts a second interpreter (~5 s idle, ~20 s on a loaded 2-core machine)
def test_kill_and_resume_loses_and_duplicates_nothing(tmp_path):
    out = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(_cmd(out), env=env)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("synth-*.tar"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(out.glob("synth-*.tar")))
    assert 2 <= done_before < 10, "the job was not interrupted mid-way"
    assert main(["synth", "--out", str(out), *ARGS]) == 0  # resume in-process (saves a second interpreter start)
    assert not list(out.glob(".*tmp*"))
    keys = [k for tar in sorted(out.glob("synth-*.tar")) for k in shard_keys(tar)]
    assert keys == [f"s0-{i:08d}" for i in range(40)]
    ref = tmp_path / "clean"
    assert main(["synth", "--out", str(ref), *ARGS]) == 0
    for tar in sorted(ref.glob("synth-*.tar")):  # same seed -> same bytes, interrupted or not
        if (out / tar.name).read_bytes() != tar.read_bytes():  # name the members that differ (seen once in CI)
            a, b = _members(out / tar.name), _members(tar)
            bad = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            pytest.fail(f"{tar.name}: members differ after kill + resume: "
                        + ", ".join(f"{k} ({len(a.get(k, b''))} vs {len(b.get(k, b''))} bytes)" for k in bad)
                        + f"; shards written before the kill: {done_before}")
    assert (out / "prompts" / "t2a_bench.jsonl").read_text() == (ref / "prompts" / "t2a_bench.jsonl").read_text()


def test_rerun_is_idempotent_and_parallel_matches_serial(tmp_path):
    cfg = SynthConfig(duration=2.0, image_size=16)
    sizes = {"t2a_bench": 4, "v2a": 1, "t2m": 1}
    synth_shards(tmp_path / "a", 6, 1, shard_size=2, workers=2, cfg=cfg, prompts=sizes, progress=False)
    synth_shards(tmp_path / "b", 6, 1, shard_size=2, workers=1, cfg=cfg, prompts=sizes, progress=False)
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "a").glob("*.tar")}
    synth_shards(tmp_path / "a", 6, 1, shard_size=2, workers=2, cfg=cfg, prompts=sizes, progress=False)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "a").glob("*.tar")} == mtimes  # nothing re-rendered
    for p in (tmp_path / "b").glob("*.tar"):
        assert (tmp_path / "a" / p.name).read_bytes() == p.read_bytes()
    with pytest.raises(ValueError, match="different synth run"):
        synth_shards(tmp_path / "a", 6, 2, shard_size=2, cfg=cfg, prompts=sizes, progress=False)


def test_cli_bad_input_is_one_line_error(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "x"), "--clips", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("audiox-data synth: error:") and err.count("\n") == 1
    assert not (tmp_path / "x" / "synth.json").exists()


def test_stats_counts_and_plots(tmp_path, capsys):
    cfg = SynthConfig(duration=2.0, image_size=16, music_fraction=0.5, video=False)
    synth_shards(
        tmp_path / "s", 10, 4, shard_size=5, cfg=cfg, prompts={"t2a_bench": 4, "v2a": 1, "t2m": 1}, progress=False
    )
    assert main(["stats", str(tmp_path / "s"), "--plots", str(tmp_path / "plots")]) == 0
    s = __import__("json").loads(capsys.readouterr().out)
    assert s["clips"] == 10 and sum(s["kinds"].values()) == 10
    assert sum(s["instrument"].values()) == s["kinds"]["music"]
    for name in ("genre", "instrument", "category"):
        assert (tmp_path / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["stats", str(tmp_path / "missing")]) == 2


def test_list_shards_reads_folders_globs_and_brace_patterns(tmp_path):
    for i in range(12):
        (tmp_path / f"train-{i:06d}.tar").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a shard")
    every = [str(tmp_path / f"train-{i:06d}.tar") for i in range(12)]
    assert list_shards(tmp_path) == every
    assert list_shards(str(tmp_path / "*.tar")) == every
    # the webdataset form the CLI help shows: ranges, lists, with globs inside; names that do not exist are left out
    assert list_shards(str(tmp_path / "train-{000000..000003}.tar")) == every[:4]
    assert list_shards(str(tmp_path / "train-{000010..000020}.tar")) == every[10:]
    assert list_shards(str(tmp_path / "train-{000001,000005}.tar")) == [every[1], every[5]]
    assert list_shards(str(tmp_path / "train-00000{1..2}.tar")) == every[1:3]
    assert list_shards(str(tmp_path / "train-{00000?,000011}.tar")) == every[:10] + [every[11]]
    assert list_shards([every[3], every[0]]) == [every[3], every[0]]  # an explicit list keeps its order
