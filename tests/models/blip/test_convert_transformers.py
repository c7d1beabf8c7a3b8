"""Conversion of transformers' own BLIP checkpoints (``convert_transformers_checkpoint``).

Tiny transformers models (each of ``BlipModel``, ``BlipForConditionalGeneration``, ``BlipForImageTextRetrieval``,
``BlipForQuestionAnswering``) get large random weights (so outputs depend on the inputs and generated ids differ
between images), are saved with a tiny BERT tokenizer (``[DEC]``/``[ENC]`` added) and a preprocessor config, then
converted; the vl_hub folder is loaded back through the Auto classes and its outputs are compared with transformers'
(atol 1e-4; generated ids exactly).

transformers' BLIP heads do not put ``[ENC]`` at position 0 themselves (LAVIS's and vl_hub's do), so they are fed
ids that already start with ``[ENC]`` where LAVIS uses it (ITM, multimodal features, VQA questions).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import transformers
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageTextToText,
    AutoModelForVisualQuestionAnswering,
    AutoProcessor,
)

from vl_hub._registration import register_all
from vl_hub.auto import AutoModelForImageTextRetrieval
from vl_hub.models.blip.convert_blip_checkpoint import (
    blip_config_from_transformers,
    convert_transformers_checkpoint,
    convert_transformers_state_dict,
    load_transformers_checkpoint,
    load_transformers_state_dict,
    transformers_architecture,
)
from vl_hub.models.blip.modeling_blip import BlipForImageTextRetrieval, BlipModel
from vl_hub.models.blip.modeling_blip_generation import (
    BlipForConditionalGeneration,
    BlipForQuestionAnswering,
)
from vl_hub.models.blip.processing_blip import VlHubBlipProcessor, build_blip_tokenizer

register_all()

ATOL = 1e-4
DEC, ENC = 230, 231
MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]  # not BLIP's: proves the converter copies them


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_hf_config(**text: Any) -> transformers.BlipConfig:
    """transformers' BlipConfig of the tiny test model (vocab 232: the fixture vocab + [DEC], [ENC])."""
    return transformers.BlipConfig(
        vision_config={
            "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "image_size": 32, "patch_size": 8,
        },
        text_config={
            "vocab_size": 232, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
            "num_attention_heads": 4, "max_position_embeddings": 40, "bos_token_id": DEC, "sep_token_id": 3,
            "pad_token_id": 0, "eos_token_id": 3, **text,
        },
        projection_dim=24,
        image_text_hidden_size=16,
    )


def randomize(model: torch.nn.Module, seed: int, scale: float = 0.15) -> torch.nn.Module:
    """Random weights large enough that the image and the text change every output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=g)
            if "norm" in name.lower() and name.endswith("weight"):
                param.copy_(1 + 0.1 * noise)
            elif name.endswith("logit_scale"):
                param.fill_(2.0)
            else:
                param.copy_(scale * noise)
    return model.eval()


@pytest.fixture(scope="module")
def tokenizer(fixtures_dir: Path) -> Any:
    return build_blip_tokenizer(fixtures_dir / "bert_vocab.txt")


def save_hf(model: torch.nn.Module, tokenizer: Any, folder: Path) -> Path:
    """A transformers checkpoint folder: weights, config, tokenizer and a BLIP preprocessor config."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "BlipImageProcessor", "size": {"height": 32, "width": 32}, "resample": 3,
                "image_mean": MEAN, "image_std": STD, "do_resize": True, "do_normalize": True,
            }
        )
    )
    return folder


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> dict[str, tuple[Any, Path]]:
    """transformers head name -> (their model, our converted folder)."""
    out: dict[str, tuple[Any, Path]] = {}
    for seed, cls in enumerate(
        (
            transformers.BlipModel,
            transformers.BlipForConditionalGeneration,
            transformers.BlipForImageTextRetrieval,
            transformers.BlipForQuestionAnswering,
        )
    ):
        theirs = randomize(cls(tiny_hf_config()), seed)
        root = tmp_path_factory.mktemp(cls.__name__)
        src = save_hf(theirs, tokenizer, root / "hf")
        convert_transformers_checkpoint(src, root / "vl_hub")
        out[cls.__name__] = (theirs, root / "vl_hub")
    return out


@pytest.fixture(scope="module")
def inputs(tokenizer: Any) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    enc = tokenizer(["a dog playing with a ball", "two cats"], padding="longest", return_tensors="pt")
    enc_ids = enc.input_ids.clone()
    enc_ids[:, 0] = ENC
    return {
        "pixel_values": torch.randn(2, 3, 32, 32, generator=g),
        "input_ids": enc.input_ids,
        "attention_mask": enc.attention_mask,
        "enc_input_ids": enc_ids,
    }


# ---------------------------------------------------------------------------------------------- captioning
def test_caption_logits(converted: dict, inputs: dict) -> None:
    theirs, folder = converted["BlipForConditionalGeneration"]
    ours = AutoModelForImageTextToText.from_pretrained(folder).eval()
    assert type(ours) is BlipForConditionalGeneration
    dec_ids = inputs["input_ids"].clone()
    dec_ids[:, 0] = DEC  # transformers' forward takes decoder ids as given; ours puts [DEC] itself
    with torch.no_grad():
        expected = theirs(pixel_values=inputs["pixel_values"], input_ids=dec_ids, attention_mask=inputs["attention_mask"])
        got = ours(pixel_values=inputs["pixel_values"], input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    torch.testing.assert_close(got.logits, expected.logits, atol=ATOL, rtol=0)


def test_caption_greedy_ids_without_prompt(converted: dict, inputs: dict) -> None:
    """``prompt=""``: captions start from ``[DEC]`` alone, as transformers' ``generate`` without input_ids."""
    theirs, _ = converted["BlipForConditionalGeneration"]
    ours, _ = load_transformers_checkpoint(_hf_folder(converted, "BlipForConditionalGeneration"), prompt="")
    assert ours.config.prompt == "" and ours.prompt_ids == [DEC]
    with torch.no_grad():
        expected = theirs.generate(pixel_values=inputs["pixel_values"], max_length=14, min_length=3, num_beams=1)
        got = ours.generate(inputs["pixel_values"], max_length=14, min_length=3, num_beams=1)
    assert torch.equal(got, expected), (got, expected)
    assert not torch.equal(got[0], got[1])  # the two images give different captions: the test can fail


def test_caption_greedy_ids_with_blip_prompt(converted: dict, inputs: dict, tokenizer: Any) -> None:
    """Default conversion: BLIP's prompt ``"a picture of "`` (its ids from the checkpoint's tokenizer), equal to
    transformers' conditional captioning with that text."""
    theirs, folder = converted["BlipForConditionalGeneration"]
    ours = BlipForConditionalGeneration.from_pretrained(folder).eval()
    prompt = tokenizer(["a picture of"] * 2, return_tensors="pt")
    assert ours.config.prompt == "a picture of "
    assert ours.config.prompt_input_ids == [DEC] + prompt.input_ids[0, 1:-1].tolist()
    with torch.no_grad():
        expected = theirs.generate(
            pixel_values=inputs["pixel_values"], input_ids=prompt.input_ids.clone(), max_length=14, min_length=6, num_beams=1
        )
        got = ours.generate(inputs["pixel_values"], max_length=14, min_length=6, num_beams=1)
    assert torch.equal(got, expected), (got, expected)


def _hf_folder(converted: dict, name: str) -> Path:
    return converted[name][1].parent / "hf"


# ---------------------------------------------------------------------------------------------- retrieval
def test_itm_logits_and_itc_similarity(converted: dict, inputs: dict) -> None:
    theirs, folder = converted["BlipForImageTextRetrieval"]
    ours = AutoModelForImageTextRetrieval.from_pretrained(folder).eval()
    assert type(ours) is BlipForImageTextRetrieval
    with torch.no_grad():
        itm_theirs = theirs(
            input_ids=inputs["enc_input_ids"], pixel_values=inputs["pixel_values"], attention_mask=inputs["attention_mask"]
        ).itm_score
        itc_theirs = theirs(
            input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"], attention_mask=inputs["attention_mask"],
            use_itm_head=False,
        ).itm_score
        itm = ours(pixel_values=inputs["pixel_values"], input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        itc = ours(
            pixel_values=inputs["pixel_values"], input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
            match_head="itc",
        )
    torch.testing.assert_close(itm.itm_logits, itm_theirs, atol=ATOL, rtol=0)
    torch.testing.assert_close(itc.itc_sim, itc_theirs, atol=ATOL, rtol=0)
    assert (itm.itm_logits[0] - itm.itm_logits[1]).abs().max() > 1e-2


def test_retrieval_training_state_starts_like_lavis(converted: dict) -> None:
    """transformers' ITM checkpoints hold no momentum encoders or queues: copies of the online weights (frozen), no
    queue (``queue_size=0``, an inference checkpoint like LAVIS BlipITM)."""
    _, folder = converted["BlipForImageTextRetrieval"]
    ours = BlipForImageTextRetrieval.from_pretrained(folder)
    assert ours.config.queue_size == 0 and ours.image_queue.shape[1] == 0
    pairs = list(ours.named_momentum_parameter_pairs())
    assert pairs
    for name, param, param_m in pairs:
        assert torch.equal(param, param_m) and not param_m.requires_grad, name


# ---------------------------------------------------------------------------------------------- VQA
def test_vqa_generated_answers(converted: dict, inputs: dict) -> None:
    theirs, folder = converted["BlipForQuestionAnswering"]
    ours = AutoModelForVisualQuestionAnswering.from_pretrained(folder).eval()
    assert type(ours) is BlipForQuestionAnswering
    with torch.no_grad():
        expected = theirs.generate(
            input_ids=inputs["enc_input_ids"], pixel_values=inputs["pixel_values"],
            attention_mask=inputs["attention_mask"], max_length=8, min_length=2, num_beams=1,
        )
        got = ours.generate_answers(
            inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"], max_length=8, min_length=2, num_beams=1
        )
    assert torch.equal(got, expected), (got, expected)
    assert not torch.equal(got[0], got[1])


def test_vqa_question_states(converted: dict, inputs: dict) -> None:
    theirs, folder = converted["BlipForQuestionAnswering"]
    ours = BlipForQuestionAnswering.from_pretrained(folder).eval()
    with torch.no_grad():
        image = theirs.vision_model(pixel_values=inputs["pixel_values"]).last_hidden_state
        expected = theirs.text_encoder(
            input_ids=inputs["enc_input_ids"], attention_mask=inputs["attention_mask"], encoder_hidden_states=image
        ).last_hidden_state
        got, _ = ours.encode_question(inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"])
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


# ---------------------------------------------------------------------------------------------- BlipModel
def test_blip_model_features(converted: dict, inputs: dict) -> None:
    """Encoder states are transformers'; the ITC features are LAVIS's projection of the CLS states (transformers'
    BlipModel pools differently, see ``convert_transformers_state_dict``) through the same projection weights."""
    theirs, folder = converted["BlipModel"]
    ours = AutoModel.from_pretrained(folder).eval()
    assert type(ours) is BlipModel
    with torch.no_grad():
        vision = theirs.vision_model(pixel_values=inputs["pixel_values"]).last_hidden_state
        text = theirs.text_model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
        multimodal = theirs.text_model(
            input_ids=inputs["enc_input_ids"], attention_mask=inputs["attention_mask"], encoder_hidden_states=vision
        ).last_hidden_state
        got = ours(pixel_values=inputs["pixel_values"], input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    torch.testing.assert_close(got.image_embeds, vision, atol=ATOL, rtol=0)
    torch.testing.assert_close(got.text_embeds, text, atol=ATOL, rtol=0)
    torch.testing.assert_close(got.multimodal_embeds, multimodal, atol=ATOL, rtol=0)
    torch.testing.assert_close(
        got.image_feat, F.normalize(theirs.visual_projection(vision[:, 0]), dim=-1), atol=ATOL, rtol=0
    )
    torch.testing.assert_close(got.text_feat, F.normalize(theirs.text_projection(text[:, 0]), dim=-1), atol=ATOL, rtol=0)
    assert ours.temp.item() == pytest.approx(torch.exp(-theirs.logit_scale).item(), rel=1e-6)


# ---------------------------------------------------------------------------------------------- the folder
@pytest.mark.parametrize(
    "name, head, max_txt_len",
    [
        ("BlipModel", "BlipModel", 30),
        ("BlipForConditionalGeneration", "BlipForConditionalGeneration", 40),
        ("BlipForImageTextRetrieval", "BlipForImageTextRetrieval", 35),
        ("BlipForQuestionAnswering", "BlipForQuestionAnswering", 35),
    ],
)
def test_folder_config_and_processor(converted: dict, name: str, head: str, max_txt_len: int) -> None:
    _, folder = converted[name]
    config = AutoConfig.from_pretrained(folder)
    assert config.model_type == "vlhub_blip" and config.architectures == [head]
    assert (config.text_config.bos_token_id, config.text_config.enc_token_id, config.text_config.sep_token_id) == (DEC, ENC, 3)
    assert config.text_config.encoder_width == 64 and config.vision_config.image_size == 32
    assert config.embed_dim == (24 if name == "BlipModel" else 16)
    assert config.max_txt_len == max_txt_len
    processor = AutoProcessor.from_pretrained(folder)
    assert isinstance(processor, VlHubBlipProcessor)
    assert processor.bos_token_id == DEC and processor.enc_token_id == ENC and processor.max_txt_len == max_txt_len
    assert processor.image_processor.image_size == 32
    assert processor.image_processor.image_mean == MEAN and processor.image_processor.image_std == STD


def test_processor_output_feeds_the_converted_model(converted: dict) -> None:
    theirs, folder = converted["BlipForImageTextRetrieval"]
    processor = AutoProcessor.from_pretrained(folder)
    ours = BlipForImageTextRetrieval.from_pretrained(folder).eval()
    image = (torch.rand(40, 48, 3) * 255).to(torch.uint8).numpy()
    batch = processor(images=[image], text=["A dog!"], text_mode="caption")
    ids = batch["input_ids"].clone()
    ids[:, 0] = ENC
    with torch.no_grad():
        expected = theirs(input_ids=ids, pixel_values=batch["pixel_values"], attention_mask=batch["attention_mask"]).itm_score
        got = ours(**batch).itm_logits
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


# ---------------------------------------------------------------------------------------------- strictness
def test_every_tensor_is_used(converted: dict) -> None:
    theirs, _ = converted["BlipForQuestionAnswering"]
    state = dict(theirs.state_dict())
    with pytest.raises(ValueError, match=r"no vl_hub counterpart.*'logit_bias'"):
        convert_transformers_state_dict({**state, "logit_bias": torch.zeros(1)}, "BlipForQuestionAnswering")
    config = blip_config_from_transformers(theirs.config)
    with pytest.raises(ValueError, match=r"unexpected keys.*text_encoder\.extra\.weight"):
        load_transformers_state_dict({**state, "text_encoder.extra.weight": torch.zeros(2)}, config, "BlipForQuestionAnswering")


def test_missing_tensor_is_named(converted: dict) -> None:
    theirs, _ = converted["BlipForConditionalGeneration"]
    config = blip_config_from_transformers(theirs.config, prompt="")
    state = {k: v for k, v in theirs.state_dict().items() if not k.endswith("layers.1.mlp.fc2.weight")}
    with pytest.raises(ValueError, match=r"missing keys.*visual_encoder\.blocks\.1\.mlp\.fc2\.weight"):
        load_transformers_state_dict(state, config, "BlipForConditionalGeneration")


def test_wrong_shapes_are_named(converted: dict) -> None:
    theirs, _ = converted["BlipForConditionalGeneration"]
    config = blip_config_from_transformers(theirs.config, prompt="", text_config={"intermediate_size": 80})
    with pytest.raises(ValueError, match=r"shape mismatches.*intermediate\.dense\.weight"):
        load_transformers_state_dict(theirs.state_dict(), config, "BlipForConditionalGeneration")


def test_tied_lm_head_filled_when_not_stored(converted: dict, inputs: dict) -> None:
    theirs, _ = converted["BlipForConditionalGeneration"]
    config = blip_config_from_transformers(theirs.config, prompt="")
    state = {k: v for k, v in theirs.state_dict().items() if not k.startswith("text_decoder.cls.predictions.decoder.")}
    model, report = load_transformers_state_dict(state, config, "BlipForConditionalGeneration", return_report=True)
    assert set(report.filled) == {"text_decoder.cls.predictions.decoder.weight", "text_decoder.cls.predictions.decoder.bias"}
    assert torch.equal(
        model.text_decoder.cls.predictions.decoder.weight, theirs.text_decoder.bert.embeddings.word_embeddings.weight
    )


def test_blip_model_drops_only_the_pooler(converted: dict) -> None:
    theirs, _ = converted["BlipModel"]
    _, report = load_transformers_state_dict(
        theirs.state_dict(), blip_config_from_transformers(theirs.config), "BlipModel", return_report=True
    )
    assert sorted(report.dropped) == ["text_model.pooler.dense.bias", "text_model.pooler.dense.weight"]
    assert sorted(report.added) == ["temp", "text_proj.bias", "vision_proj.bias"]


def test_architecture_read_off_the_weights(converted: dict) -> None:
    for name, (theirs, _) in converted.items():
        config = theirs.config.to_dict()
        config.pop("architectures", None)
        assert transformers_architecture(config, theirs.state_dict()) == name
    with pytest.raises(ValueError, match="supported"):
        transformers_architecture({"architectures": ["BlipForSomethingElse"]})


# ---------------------------------------------------------------------------------------------- bad checkpoints
def test_other_activation_is_refused() -> None:
    with pytest.raises(ValueError, match=r"hidden_act='relu'.*gelu"):
        blip_config_from_transformers(tiny_hf_config(hidden_act="relu"), "BlipForImageTextRetrieval")


def test_tokenizer_must_match_the_checkpoint(fixtures_dir: Path) -> None:
    other = build_blip_tokenizer(fixtures_dir / "bert_vocab.txt")
    other.add_tokens(["[EXTRA]"], special_tokens=True)
    with pytest.raises(ValueError, match=r"233 tokens but the text model only 232"):
        blip_config_from_transformers(tiny_hf_config(), "BlipForImageTextRetrieval", tokenizer=other)
    same = build_blip_tokenizer(fixtures_dir / "bert_vocab.txt")
    with pytest.raises(ValueError, match=r"\[DEC\] is id 230 but .*bos_token_id is 7"):
        blip_config_from_transformers(tiny_hf_config(bos_token_id=7), "BlipForImageTextRetrieval", tokenizer=same)


def test_caption_prompt_needs_a_tokenizer(converted: dict) -> None:
    theirs, _ = converted["BlipForConditionalGeneration"]
    with pytest.raises(ValueError, match="needs the tokenizer"):
        load_transformers_checkpoint(theirs)  # a model object brings no tokenizer


def test_not_a_blip_folder(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="model_type='bert'"):
        convert_transformers_checkpoint(tmp_path, tmp_path / "out")
