"""``vl-hub convert`` end to end on tiny checkpoints, and its converter registry.

* ``--from lavis``: LAVIS's ``blip_caption`` golden fixture weights saved as a ``.pth`` (``{"model": state_dict}``, as
  LAVIS ships them), the catalogue entry ``blip_caption:base_coco`` (head, prompt, ``max_txt_len``) with the tiny
  architecture from ``--config``; the folder is loaded with ``AutoModelForImageTextToText`` and must reproduce the
  fixture's logits and greedy/beam caption ids.
* ``--from transformers``: a tiny transformers ``BlipForImageTextRetrieval`` folder; the output must give
  transformers' ITM scores.
* ``--from openai`` is served by the CLIP family's ``convert(...)``; a missing family converter is reported by name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

from tests.common.reference import load_reference
from tests.models.blip.reference_utils import blip_config_from_reference
from vl_hub._registration import register_all
from vl_hub.auto import AutoModelForImageTextRetrieval
from vl_hub.cli import convert as convert_cli
from vl_hub.cli.main import build_parser, main
from vl_hub.models.blip.modeling_blip_generation import BlipForConditionalGeneration
from vl_hub.models.blip.processing_blip import VlHubBlipProcessor, build_blip_tokenizer

register_all()

ATOL = 1e-4


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def lavis_caption(reference_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, Path]:
    """(fixture, LAVIS .pth, tiny config JSON)."""
    ref = load_reference(reference_dir, "blip_caption")
    root = tmp_path_factory.mktemp("lavis")
    pth = root / "blip_coco_caption_base.pth"
    torch.save({"model": dict(ref.weights)}, pth)
    config_file = root / "tiny_blip.json"
    blip_config_from_reference(ref.meta).to_json_file(str(config_file))
    return ref, pth, config_file


@pytest.fixture(scope="module")
def lavis_out(lavis_caption: tuple[Any, Path, Path], fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, pth, config_file = lavis_caption
    out = tmp_path_factory.mktemp("converted") / "blip-caption-tiny"
    rc = main([
        "convert", "--from", "lavis", "--model-type", "blip_caption:base_coco", "--config", str(config_file),
        "--tokenizer", str(fixtures_dir / "bert_vocab.txt"), str(pth), str(out),
    ])
    assert rc == 0
    return out


def test_lavis_folder_layout(lavis_out: Path) -> None:
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json"} <= {
        p.name for p in lavis_out.iterdir()
    }
    config = json.loads((lavis_out / "config.json").read_text())
    assert config["architectures"] == ["BlipForConditionalGeneration"] and config["model_type"] == "vlhub_blip"
    # the catalogue entry's settings, with the prompt ids of the given vocabulary ([DEC] a picture of)
    assert config["prompt"] == "a picture of " and config["max_txt_len"] == 40
    tokenizer = build_blip_tokenizer(Path(__file__).resolve().parents[1] / "fixtures" / "bert_vocab.txt")
    assert config["prompt_input_ids"] == [230] + tokenizer("a picture of").input_ids[1:-1]


def test_lavis_folder_reproduces_the_fixture(lavis_caption: tuple[Any, Path, Path], lavis_out: Path) -> None:
    ref, _, _ = lavis_caption
    model = AutoModelForImageTextToText.from_pretrained(lavis_out).eval()
    assert type(model) is BlipForConditionalGeneration
    gen = ref.meta["generation"]
    with torch.no_grad():
        out = model(ref.inp("image"), ref.inp("decoder_input_ids"), ref.inp("decoder_attention_mask"))
        greedy = model.generate(ref.inp("image"), num_beams=1, max_length=gen["max_length"], min_length=gen["min_length"])
        beam = model.generate(ref.inp("image"), num_beams=3, max_length=gen["max_length"], min_length=gen["min_length"])
    torch.testing.assert_close(out.logits, ref.out("decoder_logits"), atol=ATOL, rtol=0)
    assert torch.equal(greedy, ref.out("greedy_ids"))
    assert torch.equal(beam, ref.out("beam3_ids"))


def test_lavis_folder_processor(lavis_caption: tuple[Any, Path, Path], lavis_out: Path) -> None:
    ref, _, _ = lavis_caption
    processor = AutoProcessor.from_pretrained(lavis_out)
    assert isinstance(processor, VlHubBlipProcessor)
    assert processor.prompt == "a picture of " and processor.max_txt_len == 40
    assert processor.image_processor.image_size == 32
    batch = processor(text=ref.meta["inputs"]["text_input_strings"], text_mode=None)
    ids = batch["input_ids"].clone()
    ids[:, 0] = 230
    assert torch.equal(ids, ref.inp("decoder_input_ids"))


def test_transformers_end_to_end(fixtures_dir: Path, tmp_path: Path) -> None:
    from tests.models.blip.test_convert_transformers import (
        randomize,
        save_hf,
        tiny_hf_config,
    )

    tokenizer = build_blip_tokenizer(fixtures_dir / "bert_vocab.txt")
    theirs = randomize(transformers.BlipForImageTextRetrieval(tiny_hf_config()), seed=7)
    src = save_hf(theirs, tokenizer, tmp_path / "hf")
    assert main(["convert", "--from", "transformers", str(src), str(tmp_path / "out")]) == 0
    assert AutoConfig.from_pretrained(tmp_path / "out").architectures == ["BlipForImageTextRetrieval"]
    ours = AutoModelForImageTextRetrieval.from_pretrained(tmp_path / "out").eval()
    batch = AutoProcessor.from_pretrained(tmp_path / "out")(
        images=[torch.rand(3, 32, 32).mul(255).byte().permute(1, 2, 0).numpy()] * 2, text=["a dog", "two red cats"]
    )
    ids = batch["input_ids"].clone()
    ids[:, 0] = 231  # [ENC]: transformers' ITM does not put it there itself
    with torch.no_grad():
        expected = theirs(input_ids=ids, pixel_values=batch["pixel_values"], attention_mask=batch["attention_mask"]).itm_score
        got = ours(**batch).itm_logits
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_transformers_with_a_catalogue_entry_takes_its_training_settings(fixtures_dir: Path, tmp_path: Path) -> None:
    from tests.models.blip.test_convert_transformers import save_hf, tiny_hf_config

    tokenizer = build_blip_tokenizer(fixtures_dir / "bert_vocab.txt")
    src = save_hf(transformers.BlipForImageTextRetrieval(tiny_hf_config()), tokenizer, tmp_path / "hf")
    args = ["convert", "--from", "transformers", "--model-type", "blip_retrieval:flickr", str(src), str(tmp_path / "out")]
    assert main(args) == 0
    config = AutoConfig.from_pretrained(tmp_path / "out")
    assert (config.k_test, config.queue_size, config.max_txt_len) == (128, 57600, 35)
    assert config.vision_config.hidden_size == 64  # the architecture stays the checkpoint's
    wrong = ["convert", "--from", "transformers", "--model-type", "blip_caption:base_coco", str(src), str(tmp_path / "o2")]
    assert main(wrong) == 2


# ---------------------------------------------------------------------------------------------- errors
def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def test_lavis_needs_a_model_type(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "x.pth").write_bytes(b"")
    err = _error(capsys, ["convert", "--from", "lavis", str(tmp_path / "x.pth"), str(tmp_path / "out")])
    assert "--model-type NAME:TYPE" in err


def test_unknown_model_type_lists_the_valid_ones(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "x.pth").write_bytes(b"")
    argv = ["convert", "--from", "lavis", "--model-type", "blip_caption:huge", str(tmp_path / "x.pth"), str(tmp_path / "o")]
    err = _error(capsys, argv)
    assert "unknown model 'blip_caption'" in err and "base_coco, large_coco" in err


def test_missing_source(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = _error(capsys, ["convert", "--from", "transformers", str(tmp_path / "nope"), str(tmp_path / "out")])
    assert "does not exist" in err


def test_unsupported_transformers_model_type(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    err = _error(capsys, ["convert", "--from", "transformers", str(tmp_path), str(tmp_path / "out")])
    assert "'bert'" in err and "blip (blip)" in err


def test_lavis_checkpoint_that_does_not_fit(
    capsys: pytest.CaptureFixture[str], lavis_caption: tuple[Any, Path, Path], fixtures_dir: Path, tmp_path: Path
) -> None:
    """The right file with the wrong entry: a captioning checkpoint converted as VQA fails, naming the keys."""
    _, pth, config_file = lavis_caption
    argv = [
        "convert", "--from", "lavis", "--model-type", "blip_vqa:vqav2", "--config", str(config_file),
        "--tokenizer", str(fixtures_dir / "bert_vocab.txt"), str(pth), str(tmp_path / "out"),
    ]
    err = _error(capsys, argv)
    assert "missing keys" in err and "text_encoder" in err


def test_tokenizer_that_does_not_fit_the_config(
    capsys: pytest.CaptureFixture[str], lavis_caption: tuple[Any, Path, Path], tmp_path: Path
) -> None:
    """The catalogue's BLIP-base config (vocab 30524, [DEC] 30522) with the 232-token test vocabulary."""
    _, pth, _ = lavis_caption
    vocab = Path(__file__).resolve().parents[1] / "fixtures" / "bert_vocab.txt"
    argv = ["convert", "--from", "lavis", "--model-type", "blip_caption:base_coco", "--tokenizer", str(vocab), str(pth),
            str(tmp_path / "out")]
    err = _error(capsys, argv)
    assert "bos_token_id ([DEC]): tokenizer 230 vs config 30522" in err


# ---------------------------------------------------------------------------------------------- registry
def test_every_source_has_a_converter() -> None:
    registered = convert_cli.registered_converters()
    assert {("blip", "lavis"), ("blip", "transformers"), ("clip", "openai"), ("clip", "transformers")} <= set(registered)


def test_openai_dispatches_to_the_clip_converter(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []

    def fake(src: Path, out_dir: Path, **kwargs: Any) -> Path:
        calls.append({"src": src, "out": out_dir, **kwargs})
        out_dir.mkdir()
        (out_dir / "config.json").write_text(json.dumps({"architectures": ["ClipModel"]}))
        return out_dir

    convert_cli.registered_converters()
    monkeypatch.setitem(convert_cli._REGISTRY.converters, ("clip", "openai"), fake)
    (tmp_path / "ViT-B-32.pt").write_bytes(b"")
    argv = ["convert", "--from", "openai", "--tokenizer", "bpe.txt.gz", str(tmp_path / "ViT-B-32.pt"), str(tmp_path / "o")]
    assert main(argv) == 0
    assert calls == [{
        "src": tmp_path / "ViT-B-32.pt", "out": tmp_path / "o", "model_type": None, "config_file": None,
        "tokenizer": Path("bpe.txt.gz"), "strict": True,
    }]


def test_missing_family_converter_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """As if the CLIP converter had not landed: the error names the module and the function it should provide."""
    empty = convert_cli._Registry(discovered=True)
    monkeypatch.setattr(convert_cli, "_REGISTRY", empty)
    monkeypatch.setattr(convert_cli.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(convert_cli.ConverterNotFoundError, match=r"no CLIP converter for --from openai: "
                       r"vl_hub/models/clip/convert_clip_checkpoint\.py does not exist"):
        convert_cli.get_converter("clip", "openai")


def test_a_family_registers_itself(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A new family declares VLHUB_CONVERTERS in its conversion module; the registry picks it up."""
    import types

    def toy(src: Path, out_dir: Path, **kwargs: Any) -> Path:
        return out_dir

    module = types.SimpleNamespace(VLHUB_CONVERTERS={"transformers": toy}, TRANSFORMERS_MODEL_TYPES=("toy_model",))
    registry = convert_cli._Registry()
    monkeypatch.setattr(convert_cli, "_REGISTRY", registry)
    convert_cli._register_module("toy", module)
    registry.discovered = True
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "toy_model"}))
    assert convert_cli.convert_checkpoint("transformers", tmp_path, tmp_path / "out") == tmp_path / "out"
    with pytest.raises(ValueError, match="already registered"):
        convert_cli.register_converter("toy", "transformers", lambda *a, **k: a[1])
    with pytest.raises(ValueError, match="not one of"):
        convert_cli.register_converter("toy", "onnx", toy)


def test_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["convert", "--help"])
    out = capsys.readouterr().out
    for option in ("--from", "--model-type", "--tokenizer", "--config", "--no-strict", "{lavis,transformers,openai}"):
        assert option in out


def test_albef_lavis_with_a_config_file(reference_dir: Path, fixtures_dir: Path, tmp_path: Path) -> None:
    """``vl-hub convert --from lavis`` for ALBEF takes ``--config`` (a tiny architecture of the entry's head)."""
    from tests.models.albef.reference_utils import albef_config_from_reference
    from vl_hub.auto import AutoModelForImageTextRetrieval

    ref = load_reference(reference_dir, "albef_retrieval")
    source = tmp_path / "albef_retrieval.pth"
    torch.save({"model": dict(ref.weights)}, source)
    config_file = tmp_path / "tiny_albef.json"
    albef_config_from_reference(ref.meta).to_json_file(str(config_file))
    out = tmp_path / "albef-tiny"
    assert main(["convert", "--from", "lavis", "--model-type", "albef_retrieval:coco", "--config", str(config_file),
                 "--tokenizer", str(fixtures_dir / "bert_vocab.txt"), str(source), str(out)]) == 0
    model = AutoModelForImageTextRetrieval.from_pretrained(out).eval()
    scores = model.retrieval_scores(ref.inp("image"), ref.inp("input_ids"), ref.inp("attention_mask"), k_test=2)
    torch.testing.assert_close(scores.score_i2t, ref.out("score_i2t"), atol=1e-4, rtol=0)
