"""Pack a recipes/mini.sh run for transfer in <= 15 MiB parts: the student folder whole, the teacher without the
autoencoder weights it shares bit for bit with the student (checked), the run metrics. A run cut short before its
student (no student-fp16/) packs the teacher whole. ``unpack`` reverses it.

    python scripts/device/pack.py pack RUN_DIR OUT_DIR      # writes OUT_DIR/bundle.tar.partNN
    python scripts/device/pack.py unpack PARTS_DIR DEST     # DEST/teacher, DEST/student (full folders)
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file, save, save_file

PART = 15 * 2**20


def _metadata(path: Path) -> dict[str, str]:
    """The file's own metadata (format version, int8 storage), carried over to the rebuilt teacher file."""
    with safe_open(str(path), "pt") as f:
        return dict(f.metadata() or {"format": "pt"})


def pack(run: Path, out: Path) -> None:
    if not (run / "student-fp16" / "model.safetensors").is_file():  # a run cut short after its teacher: the teacher whole
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name in ("config.json", "model.safetensors", "MODEL_CARD.md"):
                if (run / "teacher-fp16" / name).is_file():
                    tar.add(run / "teacher-fp16" / name, arcname=f"teacher/{name}")
            _add_tokenizer(tar, run / "teacher-fp16", "teacher")
            _add_metrics(tar, run)
        _write_parts(buf.getvalue(), out)
        return
    teacher = load_file(str(run / "teacher-fp16" / "model.safetensors"))
    student = load_file(str(run / "student-fp16" / "model.safetensors"))
    shared = [k for k in teacher if k.startswith("autoencoder.")]
    for k in shared:
        if not (teacher[k].dtype == student[k].dtype and bool((teacher[k] == student[k]).all())):
            raise SystemExit(f"pack: {k} differs between teacher and student; cannot share it")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("config.json", "model.safetensors", "MODEL_CARD.md"):
            tar.add(run / "student-fp16" / name, arcname=f"student/{name}")
        for name in ("config.json", "MODEL_CARD.md"):
            tar.add(run / "teacher-fp16" / name, arcname=f"teacher/{name}")
        _add_tokenizer(tar, run / "student-fp16", "student")
        _add_tokenizer(tar, run / "teacher-fp16", "teacher")
        data = save({k: v for k, v in teacher.items() if k not in shared},
                    metadata=_metadata(run / "teacher-fp16" / "model.safetensors"))
        info = tarfile.TarInfo("teacher/model-without-autoencoder.safetensors")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        _add_metrics(tar, run)
    _write_parts(buf.getvalue(), out)


def _add_tokenizer(tar: tarfile.TarFile, model: Path, arc: str) -> None:
    """A corpus tokenizer saved with the model (``tokenizer/``; none for byt5)."""
    if (model / "tokenizer").is_dir():
        tar.add(model / "tokenizer", arcname=f"{arc}/tokenizer")


def _add_metrics(tar: tarfile.TarFile, run: Path) -> None:
    for sub in ("teacher-run", "distill-run"):
        if (run / sub / "metrics.jsonl").is_file():
            tar.add(run / sub / "metrics.jsonl", arcname=f"metrics/{sub}.jsonl")


def _write_parts(blob: bytes, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for i in range(0, len(blob), PART):
        (out / f"bundle.tar.part{i // PART:02d}").write_bytes(blob[i : i + PART])
    print(f"pack: {len(blob) / 2**20:.1f} MiB in {(len(blob) + PART - 1) // PART} parts")


def unpack(parts: Path, dest: Path) -> None:
    blob = b"".join(p.read_bytes() for p in sorted(parts.glob("bundle.tar.part*")))
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    rest = dest / "teacher" / "model-without-autoencoder.safetensors"
    if not rest.is_file():  # a teacher-only bundle carries the teacher whole
        print(f"unpack: {dest / 'teacher'} (no student in this bundle)")
        return
    student = load_file(str(dest / "student" / "model.safetensors"))
    teacher = load_file(str(rest))
    teacher.update({k: v for k, v in student.items() if k.startswith("autoencoder.")})
    save_file(teacher, str(dest / "teacher" / "model.safetensors"), metadata=_metadata(rest))
    rest.unlink()
    print(f"unpack: {dest / 'teacher'} and {dest / 'student'}")


if __name__ == "__main__":
    cmd, a, b = sys.argv[1:4]
    {"pack": pack, "unpack": unpack}[cmd](Path(a), Path(b))
