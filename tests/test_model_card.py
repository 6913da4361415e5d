"""recipes/model_card.py: a fresh run's cards, and a continued run's cards that keep the earlier history."""

import json
from pathlib import Path

import torch

from audiox.core import AudioXModel, get_config
from audiox.core.checkpoint import save_pretrained


def _model(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    return save_pretrained(AudioXModel(get_config("debug")), path)


def _run(tmp_path: Path, names=("teacher", "student")) -> Path:
    out = tmp_path / "run"
    for i, name in enumerate(names):
        _model(out / name, i)
    (out / "teacher-run" / "checkpoints" / "step-00000120").mkdir(parents=True)
    if "student" in names:
        (out / "distill-run" / "step-00000030").mkdir(parents=True)
    return out


def test_fresh_run_cards(tmp_path, recipe_tool):
    out = _run(tmp_path)
    (out / "data").mkdir()
    (out / "data" / "synth.json").write_text(json.dumps({"clips": 40, "seed": 3}))
    tool = recipe_tool("model_card")
    assert tool.main(["--out", str(out), "--seconds", "90", "--recipe", "X=1 bash recipes/mini.sh"]) == 0
    text = (out / "teacher-fp16" / "MODEL_CARD.md").read_text()
    assert "## How it was made" in text and "- teacher steps: 120" in text and "- student updates: 30" in text
    assert "40 synthetic-world clips, seed 3" in text and "Continued" not in text
    assert "autoencoder" in text and "(encoder " in text and " decoder " in text  # the autoencoder's two halves
    loaded = AudioXModel.from_pretrained(out / "student-fp16")
    assert next(loaded.parameters()).dtype == torch.float32


def test_continued_cards_keep_the_history_and_skip_a_missing_stage(tmp_path, recipe_tool):
    old = _model(tmp_path / "old-teacher", 5)
    (old / "MODEL_CARD.md").write_text("# AudioX-Mini teacher\n\nintro\n\n## How it was made\n\n- teacher steps: 254\n"
                                       "- decoder trained on the frozen encoder's latents: 5262 steps\n")
    out = _run(tmp_path, names=("teacher",))  # a run with the distillation skipped
    data = tmp_path / "corpus"
    data.mkdir()
    (data / "synth.json").write_text(json.dumps({"clips": 4000, "seed": 0}))
    tool = recipe_tool("model_card")
    rc = tool.main(["--out", str(out), "--seconds", "3000", "--recipe", "bash recipes/continue.sh", "--data", str(data),
                    "--continues", f"teacher={old}", "--quantize", "int8"])
    assert rc == 0 and not (out / "student-fp16").exists()
    text = (out / "teacher-fp16" / "MODEL_CARD.md").read_text()
    history = text.index("- teacher steps: 254")
    assert text.index("## How it was made") < history < text.index("5262 steps") < text.index("## Continued from")
    assert "- teacher fine-tune steps: 120" in text and "4000 synthetic-world clips, seed 0" in text
    assert "student updates" not in text  # no distillation ran: no fact with a None value
    assert "row-wise int8" in text


def test_fresh_student_of_a_continued_teacher_carries_its_lineage(tmp_path, recipe_tool):
    old = _model(tmp_path / "old-teacher", 5)
    (old / "MODEL_CARD.md").write_text("# AudioX-Mini teacher\n\nintro\n\n## How it was made\n\n- teacher steps: 254\n")
    out = _run(tmp_path)  # teacher fine-tuned and a new student distilled from it, no --continues student=
    tool = recipe_tool("model_card")
    assert tool.main(["--out", str(out), "--seconds", "400", "--recipe", "bash recipes/continue.sh",
                      "--continues", f"teacher={old}"]) == 0
    student = (out / "student-fp16" / "MODEL_CARD.md").read_text()
    assert student.startswith("# AudioX-Mini student")
    assert student.index("- teacher steps: 254") < student.index("## Distilled afresh from the teacher continued from")
    assert "- student updates (this run): 30" in student and "## Continued from" not in student
    teacher = (out / "teacher-fp16" / "MODEL_CARD.md").read_text()
    assert "## Continued from" in teacher and "Distilled afresh" not in teacher


def test_bad_arguments_exit_2(tmp_path, capsys, recipe_tool):
    tool = recipe_tool("model_card")
    out = _run(tmp_path, names=("teacher",))
    assert tool.main(["--out", str(out), "--seconds", "1", "--recipe", "r"]) == 2  # fresh run without a student
    assert "is not a model folder" in capsys.readouterr().err
    assert tool.main(["--out", str(out), "--seconds", "1", "--recipe", "r", "--continues", "decoder=x"]) == 2
    assert "--continues wants" in capsys.readouterr().err
