"""vl_hub_shapes: every config prepares, a seed fixes the data, and every label follows from the pixels.

The checks read the objects back from the pixels (colour masks -> shape by fill ratio; video: the
centroid track) and re-derive captions, answers and labels from that, independently of the generator.
"""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest

from tests.common.builder_tester import check_builder, check_streaming_equals_prepared, comparable
from vl_hub.data import schemas, synthetic
from vl_hub.data.load import load_dataset

SIZES = {"num_train": 12, "num_validation": 3, "num_test": 3}
ROWS_PER_MEDIA = {"vqa": 2, "video_qa": 2, "entailment": 3, "visual_dialog": 3, "video_dialog": 3}
COLOUR = "|".join(synthetic.COLOURS)
SHAPE = "|".join(synthetic.SHAPES)


def _schema(task: str):
    if task == "classification":
        return schemas.classification_features(list(synthetic.SHAPES))
    return schemas.SCHEMAS[task]()


def objects_in_pixels(image) -> set[tuple[str, str]]:
    """(colour, shape) of every object, read from the pixels alone."""
    pixels = np.asarray(image.convert("RGB")).astype(int)
    found = set()
    for name, rgb in synthetic.COLOURS.items():
        mask = (np.abs(pixels - np.array(rgb)).sum(-1) == 0)
        if mask.sum() < 10:
            continue
        ys, xs = np.nonzero(mask)
        box = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        fill = box.mean()
        if fill > 0.95:
            shape = "square"
        elif fill > 0.7:
            shape = "circle"
        else:  # triangle and diamond both fill half their box; a triangle's bottom row is full
            shape = "triangle" if box[-1].mean() > 0.8 else "diamond"
        found.add((name, shape))
    return found


def video_track(path: str) -> tuple[tuple[str, str], str]:
    """((colour, shape) of the moving object in frame 0, its direction) from the decoded frames."""
    with av.open(path) as container:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(video=0)]
    centres = []
    for frame in frames:
        ys, xs = np.nonzero((255 - frame).sum(-1) > 150)  # not background, after lossy coding
        centres.append((xs.mean(), ys.mean()))
    first = frames[0]
    ys, xs = np.nonzero((255 - first).sum(-1) > 150)
    mean = first[ys, xs].mean(0)
    colour = min(synthetic.COLOURS, key=lambda c: np.abs(np.array(synthetic.COLOURS[c]) - mean).sum())
    snapped = np.full_like(first, 255)
    snapped[ys, xs] = synthetic.COLOURS[colour]
    from PIL import Image

    ((_, shape),) = objects_in_pixels(Image.fromarray(snapped.astype(np.uint8)))
    dx, dy = centres[-1][0] - centres[0][0], centres[-1][1] - centres[0][1]
    direction = ("right" if dx > 0 else "left") if abs(dx) > abs(dy) else ("down" if dy > 0 else "up")
    assert max(abs(dx), abs(dy)) > 20 and min(abs(dx), abs(dy)) < 2, "the object moves along one axis"
    return (colour, shape), direction


def mentioned(text: str) -> set[tuple[str, str]]:
    return set(re.findall(rf"\b({COLOUR}) ({SHAPE})\b", text))


def answer_image_question(question: str, objs: set[tuple[str, str]]) -> str:
    if m := re.fullmatch(rf"what colour is the ({SHAPE})\?", question):
        (colour,) = [c for c, s in objs if s == m[1]]
        return colour
    if m := re.fullmatch(rf"what shape is ({COLOUR})\?", question):
        (shape,) = [s for c, s in objs if c == m[1]]
        return shape
    if question == "how many shapes are there?":
        return str(len(objs))
    m = re.fullmatch(rf"is there a ({COLOUR}) ({SHAPE})\?", question)
    assert m, question
    return "yes" if (m[1], m[2]) in objs else "no"


def answer_video_question(question: str, obj: tuple[str, str], direction: str) -> str:
    if re.fullmatch(rf"what colour is the {obj[1]}\?", question):
        return obj[0]
    if question == "what shape is moving?":
        return obj[1]
    if re.fullmatch(rf"which way is the {obj[1]} moving\?", question):
        return direction
    m = re.fullmatch(rf"is the {obj[1]} moving (left|right|up|down)\?", question)
    assert m, question
    return "yes" if m[1] == direction else "no"


def entailment_label(hypothesis: str, objs: set[tuple[str, str]]) -> str:
    if re.fullmatch(rf"the ({COLOUR}) ({SHAPE}) is (heavy|soft|new|old)", hypothesis):
        assert mentioned(hypothesis) <= objs, "neutral statements are about a visible object"
        return "neutral"
    if m := re.fullmatch(rf"there is (a|no) ({COLOUR}) ({SHAPE})", hypothesis):
        present = (m[2], m[3]) in objs
        return "entailment" if present == (m[1] == "a") else "contradiction"
    if m := re.fullmatch(rf"the ({SHAPE}) is ({COLOUR})", hypothesis):
        return "entailment" if (m[2], m[1]) in objs else "contradiction"
    m = re.fullmatch(r"there (?:is|are) (\d) shapes?", hypothesis)
    assert m, hypothesis
    return "entailment" if int(m[1]) == len(objs) else "contradiction"


def nlvr_truth(sentence: str, left: set[tuple[str, str]], right: set[tuple[str, str]]) -> bool:
    if m := re.fullmatch(rf"the (left|right) image contains a ({COLOUR}) ({SHAPE})", sentence):
        return (m[2], m[3]) in (left if m[1] == "left" else right)
    if m := re.fullmatch(rf"both images contain a ({SHAPE})", sentence):
        return all(any(s == m[1] for _, s in objs) for objs in (left, right))
    if m := re.fullmatch(rf"both images contain something ({COLOUR})", sentence):
        return all(any(c == m[1] for c, _ in objs) for objs in (left, right))
    m = re.fullmatch(r"there are (\d) shapes in total", sentence)
    assert m, sentence
    return int(m[1]) == len(left) + len(right)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every config, prepared once with small sizes and 96 px images (room for the shape read-back)."""
    cache = tmp_path_factory.mktemp("shapes")
    out = {}
    for task in schemas.SCHEMAS:
        per = ROWS_PER_MEDIA.get(task, 1)
        expected = {"train": 12 * per, "validation": 3 * per, "test": 3 * per}
        out[task] = check_builder(
            "vl_hub_shapes", None, cache, expected, _schema(task), config_name=task, image_size=96, **SIZES
        )
    return out


def test_image_text_captions_match_pixels(prepared: dict) -> None:
    for split in ("train", "test"):
        for row in prepared["image_text"][split]:
            objs = objects_in_pixels(row["image"])
            assert 1 <= len(objs) <= 2 and len(row["captions"]) == 3
            for caption in row["captions"]:
                assert mentioned(caption) == objs, (caption, objs)


def test_object_centre_pixel_has_the_captioned_colour(tmp_path: Path) -> None:
    kind, scenes = synthetic.scenes_for("image_text", 0, "train", 20, 64)
    paths = synthetic.ensure_media(tmp_path / "m", scenes, "image", 64)
    from PIL import Image

    for scene, path in zip(scenes, paths, strict=True):
        image = Image.open(path).convert("RGB")
        for obj in scene.objects:
            assert image.getpixel((obj.cx, obj.cy)) == synthetic.COLOURS[obj.colour]
            assert obj.name in synthetic.image_captions(scene)[0]
        assert image.getpixel((0, 0)) == synthetic.BACKGROUND


def test_vqa_and_dialog_answers_follow_from_pixels(prepared: dict) -> None:
    kinds = set()
    for row in prepared["vqa"]["train"]:
        objs = objects_in_pixels(row["image"])
        assert row["answers"] == [answer_image_question(row["question"], objs)] * 10
        kinds.add(row["question"].split()[0:2][1])
    assert {"colour", "shape", "many", "there"} <= kinds, "all four question kinds occur"
    dialogs: dict[str, list[dict]] = {}
    for row in prepared["visual_dialog"]["validation"]:
        objs = objects_in_pixels(row["image"])
        assert row["answer"] == answer_image_question(row["question"], objs)
        assert row["options"][row["gt_index"]] == row["answer"]
        assert mentioned(row["caption"]) == objs
        dialogs.setdefault(row["dialog_id"], []).append(row)
    for rounds in dialogs.values():
        assert [r["round"] for r in rounds] == [0, 1, 2]
        assert rounds[2]["history"] == [{"question": r["question"], "answer": r["answer"]} for r in rounds[:2]]


def test_entailment_nlvr_and_classification_labels_follow_from_pixels(prepared: dict) -> None:
    names = schemas.ENTAILMENT_LABELS
    labels = []
    for row in prepared["entailment"]["train"]:
        label = names[row["label"]]
        assert label == entailment_label(row["hypothesis"], objects_in_pixels(row["image"])), row["hypothesis"]
        labels.append(label)
    assert labels.count("entailment") == labels.count("neutral") == labels.count("contradiction") == 12
    truths = []
    for row in prepared["nlvr"]["train"]:
        truth = nlvr_truth(row["sentence"], objects_in_pixels(row["image0"]), objects_in_pixels(row["image1"]))
        assert bool(row["label"]) == truth, row["sentence"]
        truths.append(truth)
    assert 0 < sum(truths) < len(truths)
    classes = prepared["classification"]["train"].features["label"].names
    for row in prepared["classification"]["train"]:
        ((_, shape),) = objects_in_pixels(row["image"])
        assert classes[row["label"]] == shape


def test_video_captions_and_answers_follow_from_frames(prepared: dict) -> None:
    for row in prepared["video_text"]["train"]:
        obj, direction = video_track(row["video"])
        for caption in row["captions"]:
            assert mentioned(caption) == {obj} and caption.endswith(direction)
    for row in prepared["video_qa"]["validation"]:
        obj, direction = video_track(row["video"])
        assert row["answers"] == [answer_video_question(row["question"], obj, direction)]
    for row in prepared["video_dialog"]["test"]:
        obj, direction = video_track(row["video"])
        assert row["answer"] == answer_video_question(row["question"], obj, direction)
        assert mentioned(row["summary"]) == {obj} and direction in row["caption"]


def test_same_seed_same_data_other_seed_other_data(tmp_path: Path) -> None:
    kwargs = {"config_name": "vqa", "num_train": 6, "num_validation": 1, "num_test": 1}
    a = load_dataset("vl_hub_shapes", cache_dir=tmp_path / "a", **kwargs)
    b = load_dataset("vl_hub_shapes", cache_dir=tmp_path / "b", **kwargs)
    c = load_dataset("vl_hub_shapes", cache_dir=tmp_path / "c", seed=1, **kwargs)
    for split in a:
        rows_a = [comparable(r) for r in a[split]]
        assert rows_a == [comparable(r) for r in b[split]]
    assert [comparable(r) for r in a["train"]] != [comparable(r) for r in c["train"]]
    va = load_dataset("vl_hub_shapes", cache_dir=tmp_path / "a", config_name="video_text", num_train=2, num_validation=1, num_test=1)
    vb = load_dataset("vl_hub_shapes", cache_dir=tmp_path / "b", config_name="video_text", num_train=2, num_validation=1, num_test=1)
    for ra, rb in zip(va["train"], vb["train"], strict=True):
        assert Path(ra["video"]).read_bytes() == Path(rb["video"]).read_bytes()


def test_streaming_equals_prepared(tmp_path: Path) -> None:
    for config in ("nlvr", "video_qa"):
        n = check_streaming_equals_prepared(
            "vl_hub_shapes", None, tmp_path, "validation", config_name=config, num_train=2, num_validation=3, num_test=1
        )
        assert n == 3 * ROWS_PER_MEDIA.get(config, 1)


def test_colour_classes_and_bad_options(tmp_path: Path) -> None:
    ds = load_dataset(
        "vl_hub_shapes", cache_dir=tmp_path, config_name="classification", label_by="colour", num_train=4, num_validation=0, num_test=0
    )
    assert list(ds) == ["train"]
    names = ds["train"].features["label"].names
    assert names == list(synthetic.COLOURS)
    for row in ds["train"]:
        ((colour, _),) = objects_in_pixels(row["image"])
        assert names[row["label"]] == colour
    with pytest.raises(ValueError, match="image_size must be an even int >= 32, got 33"):
        load_dataset("vl_hub_shapes", cache_dir=tmp_path, image_size=33)
    with pytest.raises(ValueError, match="label_by must be 'shape' or 'colour', got 'size'"):
        load_dataset("vl_hub_shapes", cache_dir=tmp_path, config_name="classification", label_by="size")
