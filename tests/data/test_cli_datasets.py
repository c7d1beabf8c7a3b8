"""`vl-hub datasets info | prepare | export | list` and `vl-hub list`: output, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from vl_hub.cli.main import main

FLAKY = str(Path(__file__).parent / "builders" / "flaky_jsonl")


def test_info_lists_configs_tasks_and_instructions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "info", "vl_hub_shapes"]) == 0
    out = capsys.readouterr().out
    assert "tasks:    image_text, video_text, vqa, video_qa, nlvr, entailment, classification, visual_dialog, video_dialog" in out
    assert "Synthetic vision-language data" in out
    assert main(["datasets", "info", "custom"]) == 0
    assert "vqa             file_name, question, answer | answers" in capsys.readouterr().out


def test_prepare_reports_counts_and_skips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["datasets", "prepare", "vl_hub_shapes", "--config", "vqa", "--cache-dir", str(tmp_path)]
    assert main([*args, "--set", "num_train=3", "--set", "num_validation=1", "--set", "num_test=1"]) == 0
    out = capsys.readouterr().out
    assert "train: 6 rows\nvalidation: 2 rows\ntest: 2 rows\n" in out and f"cached in {tmp_path}" in out

    data = tmp_path / "photos"
    data.mkdir()
    Image.new("RGB", (8, 8), "red").save(data / "a.png")
    (data / "metadata.jsonl").write_text('{"file_name": "a.png", "caption": "red"}\n{"file_name": "b.png", "caption": "x"}\n')
    custom = ["datasets", "prepare", "custom", "--task", "image_text", "--data-dir", str(data), "--cache-dir", str(tmp_path)]
    assert main([*custom, "--skip-invalid", "--split", "train"]) == 0
    assert "train: 1 rows, 1 skipped as invalid" in capsys.readouterr().out
    assert main(custom) == 2
    err = capsys.readouterr().err
    assert err.startswith("vl-hub datasets prepare: error: custom:") and "'b.png' does not exist" in err


def test_export_writes_a_loadable_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = ["datasets", "export", "vl_hub_shapes", "--config", "nlvr", "--cache-dir", str(tmp_path / "c"), "--output", str(out),
            "--set", "num_train=2", "--set", "num_validation=1", "--set", "num_test=1"]
    assert main(argv) == 0
    assert f"wrote {out} (train: 2 rows, validation: 1 rows, test: 1 rows)" in capsys.readouterr().out
    assert (out / "README.md").read_text().startswith("---\n")
    assert main(argv) == 2
    assert "is not empty; choose a new folder or pass overwrite=True" in capsys.readouterr().err


def test_errors_are_one_message_and_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = ["datasets", "prepare", FLAKY, "--data-dir", str(tmp_path / "missing"), "--cache-dir", str(tmp_path)]
    cases = [
        (["datasets", "info", "nope"], "unknown dataset 'nope'; valid names:"),
        (missing, f"expected {tmp_path / 'missing'} but it does not exist"),
        (["datasets", "prepare", "custom", "--task", "captions", "--data-dir", str(tmp_path)], "task='captions'"),
        (["datasets", "prepare", "vl_hub_shapes", "--set", "num_trian=1", "--cache-dir", str(tmp_path)], "num_trian"),
        (["datasets", "prepare", "vl_hub_shapes", "--set", "oops", "--cache-dir", str(tmp_path)], "KEY=VALUE"),
    ]
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"vl-hub datasets {argv[1]}: error: ") and needle in err, (argv, err)
    # the console script: no traceback, status 2, the builder's download instructions
    proc = subprocess.run([sys.executable, "-m", "vl_hub.cli", *missing], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "Put annotations.jsonl and an images/ folder in data_dir" in proc.stderr
    assert not any(p.is_file() for p in tmp_path.rglob("*")), "failed commands leave nothing in the cache"


def test_list_shows_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("datasets:"))
    assert "vl_hub_shapes (image_text, video_text, vqa," in line
    assert main(["datasets", "list"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert any(r.startswith("vl_hub_shapes ") and r.endswith("video_dialog") for r in rows)
    assert rows[-1].startswith("custom ")
