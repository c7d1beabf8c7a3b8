"""The dataset browser: opening builders (synthetic and from a data folder), paging, shuffling, jumping, the sample
descriptions of every task schema, playable videos, and readable errors for missing data."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest

import vl_hub
from tests.common.builder_tester import dummy_dir
from tests.demo.conftest import SYNTHETIC
from vl_hub.data.builder_utils import MissingDataError
from vl_hub.demo import tab_datasets
from vl_hub.demo.dataset_browser import PAGE_SIZE, DatasetBrowser, describe_row
from vl_hub.demo.inputs import DemoInputError
from vl_hub.demo.tab_datasets import SLOT_OUTPUTS


def shapes(ctx, config: str, split: str = "train") -> datasets.Dataset:
    return ctx.browser.split(ctx.browser.load("vl_hub_shapes", config), split)


def test_builders_and_configs(ctx) -> None:
    assert ctx.browser.builders() == vl_hub.list_datasets()
    assert "vl_hub_shapes" in ctx.browser.builders()
    assert {"image_text", "video_text", "vqa", "nlvr"} <= set(ctx.browser.configs("vl_hub_shapes"))
    with pytest.raises(DemoInputError, match="unknown dataset 'nope'"):
        ctx.browser.configs("nope")


def test_pages_in_order_show_each_rows_captions(ctx) -> None:
    split = shapes(ctx, "image_text")
    assert len(split) == SYNTHETIC["num_train"]
    view = ctx.browser.page(split, 8, title="shapes")
    assert [s.row for s in view.samples] == list(range(8, 16))
    assert view.summary == "shapes — samples 9–16 of 16 (in order)"
    row = split[9]
    sample = view.samples[1]
    assert all(caption in sample.text for caption in row["captions"])
    assert f"`{row['image_id']}`" in sample.text and sample.text.startswith("**#9**")
    assert sample.video is None and sample.image.size == (128, 128)  # 64 px enlarged x2 for the grid
    assert ctx.browser.page(split, 99).start == 15  # clamped to the split


def test_shuffled_order_is_a_seeded_permutation(ctx) -> None:
    split = shapes(ctx, "image_text")
    order = DatasetBrowser.order(len(split), 7)
    assert sorted(order.tolist()) == list(range(len(split))) and order.tolist() != list(range(len(split)))
    np.testing.assert_array_equal(order, np.random.default_rng(7).permutation(len(split)))
    view = ctx.browser.page(split, 0, seed=7)
    assert [s.row for s in view.samples] == order[:PAGE_SIZE].tolist()
    assert "(shuffled)" in view.summary


def test_video_samples_are_copied_where_the_page_can_play_them(ctx) -> None:
    import tempfile

    split = shapes(ctx, "video_text")
    sample = ctx.browser.page(split, 0).samples[0]
    assert sample.image is None and sample.video is not None
    assert Path(sample.video).is_file() and Path(sample.video).suffix == ".mp4"
    assert Path(sample.video).resolve().is_relative_to(Path(tempfile.gettempdir()).resolve())
    assert Path(sample.video).read_bytes() == Path(split[0]["video"]).read_bytes()
    assert "moving" in sample.text


def test_descriptions_of_qa_nlvr_and_classification_rows(ctx) -> None:
    vqa = shapes(ctx, "vqa")
    text = ctx.browser.page(vqa, 0).samples[0].text
    assert f"**question:** {vqa[0]['question']}" in text and f"{vqa[0]['answers'][0]} ×10" in text
    assert "correct choice" not in text and "rationales" not in text  # empty / sentinel fields left out
    nlvr = shapes(ctx, "nlvr")
    sample = ctx.browser.page(nlvr, 0).samples[0]
    assert sample.image.size == (2 * (64 + 4 + 64), 2 * 64)  # both images, side by side, enlarged
    assert f"**label:** {nlvr.features['label'].int2str(nlvr[0]['label'])}" in sample.text
    classes = shapes(ctx, "classification")
    label = classes.features["label"].int2str(classes[0]["label"])
    assert f"**label:** {label}" in ctx.browser.page(classes, 0).samples[0].text


def test_describe_row_shortens_lists_and_shows_dialogue_history() -> None:
    features = datasets.Features({
        "dialog_id": datasets.Value("string"),
        "options": datasets.Sequence(datasets.Value("string")),
        "history": [{"question": datasets.Value("string"), "answer": datasets.Value("string")}],
        "relevance": datasets.Sequence(datasets.Value("float32")),
        "gt_index": datasets.Value("int32"),
    })
    row = {
        "dialog_id": "d1",
        "options": [f"option {i}" for i in range(7)],
        "history": [{"question": "is it red?", "answer": "yes"}],
        "relevance": [0.5] * 7,
        "gt_index": -1,
    }
    text = describe_row(3, row, features)
    assert text.startswith("**#3** · `d1`")
    assert "- option 3" in text and "option 4" not in text and "… 3 more" in text
    assert "**history** (1):\n- Q: is it red? A: yes" in text
    assert "relevance" not in text and "gt index" not in text


def test_builder_with_a_data_folder_reads_its_dummy_fixture(ctx) -> None:
    dataset = ctx.browser.load("coco_caption", "karpathy", str(dummy_dir("coco_caption")))
    split = ctx.browser.split(dataset, None)
    view = ctx.browser.page(split, 0)
    assert view.samples and view.samples[0].image is not None
    assert split[0]["captions"][0][:20] in view.samples[0].text


def test_missing_data_is_explained(ctx, tmp_path: Path) -> None:
    with pytest.raises(DemoInputError, match="The data folder '/nowhere/coco' does not exist"):
        ctx.browser.load("coco_caption", "karpathy", "/nowhere/coco")
    with pytest.raises(MissingDataError, match="(?s)dataset_coco.json.*Download"):
        ctx.browser.load("coco_caption", "karpathy", str(tmp_path))
    with pytest.raises(DemoInputError, match="Pick a dataset builder"):
        ctx.browser.load("", None, None)
    with pytest.raises(DemoInputError, match="no split 'dev'; its splits are: train, validation, test"):
        ctx.browser.split(ctx.browser.load("vl_hub_shapes", "image_text"), "dev")


def slot_texts(outputs: tuple) -> list[str]:
    """The Markdown values of the grid slots in a page handler's outputs (after state and summary)."""
    slots = outputs[2:-1]
    return [slots[i * SLOT_OUTPUTS + SLOT_OUTPUTS - 1]["value"] for i in range(PAGE_SIZE)]


def test_tab_handlers_open_page_shuffle_and_jump(ctx) -> None:
    configs, _, _ = tab_datasets.change_builder(ctx, "vl_hub_shapes")
    assert configs["value"] == "image_text" and "video_text" in configs["choices"]
    opened = tab_datasets.open_dataset(ctx, "vl_hub_shapes", "image_text", "", "validation")
    split_update, outputs = opened[0], opened[1:]
    assert split_update["choices"] == ["train", "validation", "test"] and split_update["value"] == "validation"
    state = outputs[0]
    assert state == {"builder": "vl_hub_shapes", "config": "image_text", "data_dir": "", "split": "validation",
                     "seed": None, "start": 0}
    assert len(outputs) == 2 + PAGE_SIZE * SLOT_OUTPUTS + 1 and outputs[-1].startswith("✓ Opened vl_hub_shapes")
    after = tab_datasets.move(ctx, state, 1)
    assert after[0]["start"] == 0 and "last page" in after[-1]  # 8 validation rows: one page
    train = tab_datasets.change_split(ctx, state, "train")
    nxt = tab_datasets.move(ctx, train[0], 1)
    assert nxt[0]["start"] == 8 and "samples 9–16 of 16" in nxt[1]
    assert slot_texts(nxt)[0].startswith("**#8**")
    back = tab_datasets.move(ctx, nxt[0], -5)
    assert back[0]["start"] == 0 and "first page" in back[-1]
    mixed = tab_datasets.shuffle(ctx, nxt[0], seed=3)
    first = DatasetBrowser.order(16, 3)[0]
    assert mixed[0]["seed"] == 3 and slot_texts(mixed)[0].startswith(f"**#{first}**")
    jumped = tab_datasets.goto(ctx, mixed[0], 5)
    assert jumped[0]["seed"] is None and slot_texts(jumped)[0].startswith("**#5**")
    with pytest.raises(DemoInputError, match="Index 16 is outside the split: it has rows 0 to 15"):
        tab_datasets.goto(ctx, mixed[0], 16)
    with pytest.raises(DemoInputError, match="Open a dataset first"):
        tab_datasets.move(ctx, {}, 1)
