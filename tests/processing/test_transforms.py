"""Eval/train/CLIP transforms and RandAugment: numerics by hand, LAVIS golden pixels, seeding, crop bounds."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from PIL import Image

from tests.common.reference import load_reference
from vl_hub.processing.randaugment import (
    ALL_RANDAUGMENT_OPS,
    BLIP_RANDAUGMENT_OPS,
    RandAugment,
    apply_op,
)
from vl_hub.processing.transforms import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    ClipEvalTransform,
    ClipTrainTransform,
    ImageEvalTransform,
    ImageTrainTransform,
    center_crop,
    random_resized_crop_params,
    resize_shorter_side,
)


def _image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _manual_normalise(image: Image.Image) -> np.ndarray:
    """(x / 255 - mean) / std per channel, in float64, as (3, H, W)."""
    pixels = np.asarray(image, dtype=np.float64) / 255.0
    return ((pixels - np.array(OPENAI_CLIP_MEAN)) / np.array(OPENAI_CLIP_STD)).transpose(2, 0, 1)


def test_eval_transform_equals_hand_computation() -> None:
    image = _image(5, 4)
    out = ImageEvalTransform(image_size=3)(image)
    assert out.shape == (3, 3, 3) and out.dtype == torch.float32
    expected = _manual_normalise(image.resize((3, 3), Image.Resampling.BICUBIC))
    np.testing.assert_allclose(out.numpy(), expected, atol=2e-6, rtol=0)
    # A single pixel value by hand: top-left red channel.
    red = np.asarray(image.resize((3, 3), Image.Resampling.BICUBIC))[0, 0, 0]
    assert out[0, 0, 0].item() == pytest.approx((red / 255 - 0.48145466) / 0.26862954, abs=1e-6)


@pytest.mark.parametrize("fixture", ["blip_caption", "clip_vit"])
def test_eval_transforms_match_lavis_pixels(reference_dir, fixture: str) -> None:
    ref = load_reference(reference_dir, fixture)
    raw = ref.inp("image_uint8")  # (B, 3, S, S), already at model resolution
    images = [Image.fromarray(raw[i].permute(1, 2, 0).numpy()) for i in range(raw.shape[0])]
    size = raw.shape[-1]
    for transform in (ImageEvalTransform(size), ClipEvalTransform(size)):
        out = transform.batch(images)
        assert out.shape == ref.inp("image").shape
        torch.testing.assert_close(out, ref.inp("image"), rtol=0, atol=0)


def test_batch_and_non_rgb_inputs(tmp_path) -> None:
    transform = ImageEvalTransform(8)
    rgba = Image.new("RGBA", (10, 6), (10, 20, 30, 0))
    path = tmp_path / "x.png"
    _image(7, 9).save(path)
    batch = transform.batch([rgba, path, np.zeros((5, 5), dtype=np.uint8), _image(12, 12)])
    assert batch.shape == (4, 3, 8, 8) and batch.dtype == torch.float32
    white = (1.0 - torch.tensor(OPENAI_CLIP_MEAN)) / torch.tensor(OPENAI_CLIP_STD)
    torch.testing.assert_close(batch[0], white.view(3, 1, 1).expand(3, 8, 8))
    torch.testing.assert_close(batch[1], transform(path))
    with pytest.raises(ValueError, match="at least one"):
        transform.batch([])


def test_clip_eval_resizes_shorter_side_and_center_crops() -> None:
    image = _image(10, 6)
    resized = resize_shorter_side(image, 4)
    assert resized.size == (6, 4)  # int(4 * 10 / 6) = 6
    assert resize_shorter_side(_image(6, 10), 4).size == (4, 6)
    out = ClipEvalTransform(4)(image)
    expected = _manual_normalise(image.resize((6, 4), Image.Resampling.BICUBIC).crop((1, 0, 5, 4)))
    np.testing.assert_allclose(out.numpy(), expected, atol=2e-6, rtol=0)
    # torchvision rounds the offset with Python's round: (7 - 4) / 2 = 1.5 -> 2
    seven = Image.fromarray(np.arange(7, dtype=np.uint8)[None, :].repeat(4, 0))
    assert np.asarray(center_crop(seven, 4))[0].tolist() == [2, 3, 4, 5]


def test_random_resized_crop_bounds() -> None:
    rng = np.random.default_rng(0)
    width, height = 100, 80
    for _ in range(500):
        top, left, crop_h, crop_w = random_resized_crop_params(width, height, (0.5, 1.0), (3 / 4, 4 / 3), rng)
        assert 0 <= top and top + crop_h <= height and 0 <= left and left + crop_w <= width
        area = crop_h * crop_w / (width * height)
        # rounding each side to an integer moves the area by at most about one row and one column
        assert 0.5 - 0.03 <= area <= 1.0 + 1e-9
        assert 3 / 4 - 0.05 <= crop_w / crop_h <= 4 / 3 + 0.05
    # Tries fail on an extreme aspect ratio: central fallback crop with the largest allowed ratio.
    assert random_resized_crop_params(1000, 10, (0.5, 1.0), (3 / 4, 4 / 3), rng) == (0, 493, 10, 13)


def test_train_transform_is_seeded() -> None:
    image = _image(40, 30)
    a = ImageTrainTransform(16, seed=3)(image)
    b = ImageTrainTransform(16, seed=3)(image)
    c = ImageTrainTransform(16, seed=4)(image)
    assert a.shape == (3, 16, 16) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    transform = ImageTrainTransform(16, seed=3)
    assert not torch.equal(transform(image), transform(image)), "a seeded stream must move on between calls"
    generator_a = np.random.default_rng(9)
    generator_b = np.random.default_rng(9)
    assert torch.equal(transform(image, rng=generator_a), transform(image, rng=generator_b))
    batch = ImageTrainTransform(16, seed=5).batch([image, image])
    assert batch.shape == (2, 3, 16, 16) and not torch.equal(batch[0], batch[1])


def test_train_transform_without_seed_follows_torch_seed() -> None:
    image = _image(40, 30)
    transform = ImageTrainTransform(16)
    torch.manual_seed(0)
    first = transform(image)
    torch.manual_seed(0)
    assert torch.equal(transform(image), first)
    assert not torch.equal(transform(image), first)


def test_flip_and_crop_without_randaugment() -> None:
    image = _image(12, 12)
    # scale (1, 1) on a square image: every try is rejected and the fallback is the whole image
    flipped = ImageTrainTransform(12, min_scale=1.0, max_scale=1.0, hflip_prob=1.0, randaugment=None, seed=0)
    kept = ImageTrainTransform(12, min_scale=1.0, max_scale=1.0, hflip_prob=0.0, randaugment=None, seed=0)
    expected = _manual_normalise(image)
    np.testing.assert_allclose(kept(image).numpy(), expected, atol=2e-6, rtol=0)
    np.testing.assert_allclose(flipped(image).numpy(), expected[:, :, ::-1], atol=2e-6, rtol=0)


def test_clip_train_transform() -> None:
    image = _image(50, 40)
    out = ClipTrainTransform(24, seed=1)(image)
    assert out.shape == (3, 24, 24) and out.dtype == torch.float32
    assert torch.equal(out, ClipTrainTransform(24, seed=1)(image))
    with pytest.raises(ValueError, match="min_scale"):
        ClipTrainTransform(24, min_scale=0.0)


@pytest.mark.parametrize("magnitude", [5, 9])
@pytest.mark.parametrize("name", ALL_RANDAUGMENT_OPS)
def test_randaugment_ops_keep_size_and_mode(name: str, magnitude: int) -> None:
    image = _image(21, 13)
    augment = RandAugment(magnitude=magnitude, ops=ALL_RANDAUGMENT_OPS)
    args = augment._args(name, np.random.default_rng(0))
    out = apply_op(image, name, *args)
    assert out.size == image.size and out.mode == "RGB"


def test_randaugment_hand_checks() -> None:
    image = _image(20, 10)
    pixels = np.asarray(image)
    shifted = np.asarray(apply_op(image, "TranslateX", 5.0, (128, 128, 128)))
    np.testing.assert_array_equal(shifted[:, :15], pixels[:, 5:])
    assert (shifted[:, 15:] == 128).all()
    down = np.asarray(apply_op(image, "TranslateY", -3.0, (128, 128, 128)))
    np.testing.assert_array_equal(down[3:], pixels[:7])
    assert (down[:3] == 128).all()
    # magnitude 5: enhance factor 5/10*1.8+0.1 = 1.0, so Brightness and Sharpness change nothing
    for name in ("Brightness", "Sharpness"):
        assert RandAugment(magnitude=5)._args(name, np.random.default_rng(0)) == (1.0,)
        np.testing.assert_array_equal(np.asarray(apply_op(image, name, 1.0)), pixels)
    # Brightness 0.5 truncates v * 0.5 as the original's lookup table
    np.testing.assert_array_equal(np.asarray(apply_op(image, "Brightness", 0.5)), (pixels * 0.5).astype(np.uint8))
    grey = Image.fromarray(np.array([[[50, 50, 50], [100, 100, 100], [150, 150, 150]]], dtype=np.uint8))
    assert np.asarray(apply_op(grey, "AutoContrast"))[0, :, 0].tolist() == [0, 127, 255]
    # Rotating by +90 degrees (counter-clockwise) about OpenCV's centre (W/2, H/2) = (4.5, 4.5) in
    # pixel-centre coordinates: column x goes to row 4.5 - (x - 4.5), so columns 7, 8 -> rows 2, 1.
    stripe = np.zeros((9, 9, 3), dtype=np.uint8)
    stripe[:, 7:] = 255
    rotated = np.asarray(apply_op(Image.fromarray(stripe), "Rotate", 90.0, (0, 0, 0)))[..., 0]
    expected = np.zeros((9, 9), dtype=np.uint8)
    expected[1:3] = 255
    np.testing.assert_array_equal(rotated, expected)


def test_randaugment_sampling() -> None:
    augment = RandAugment(2, 5)
    assert augment.ops == BLIP_RANDAUGMENT_OPS
    allowed = {
        "ShearX": {0.15, -0.15},
        "ShearY": {0.15, -0.15},
        "TranslateX": {5.0, -5.0},
        "TranslateY": {5.0, -5.0},
        "Rotate": {15.0, -15.0},
    }
    rng = np.random.default_rng(0)
    lengths = []
    for _ in range(300):
        plan = augment.sample(rng)
        lengths.append(len(plan))
        for step in plan:
            if step.name in allowed:
                assert round(step.args[0], 6) in allowed[step.name]
                assert step.args[1] == (128, 128, 128)
    # each of the 2 ops is applied with probability 0.5: 0.25 / 0.5 / 0.25 for 0 / 1 / 2 ops
    assert np.mean(lengths) == pytest.approx(1.0, abs=0.12)
    assert augment.sample(np.random.default_rng(7)) == augment.sample(np.random.default_rng(7))
    image = _image(16, 16)
    assert RandAugment(prob=0.0)(image, np.random.default_rng(0)) is image
    assert RandAugment(ops=("Identity",), prob=1.0)(image, np.random.default_rng(0)) is image
    with pytest.raises(ValueError, match="unknown RandAugment ops"):
        RandAugment(ops=("Blur",))
    with pytest.raises(ValueError, match="unknown RandAugment op"):
        apply_op(image, "Blur")


class _Repeated(torch.utils.data.Dataset):
    def __init__(self, transform: ImageTrainTransform) -> None:
        self.transform = transform
        self.image = _image(24, 20)

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(self.image)


def test_seeded_transform_gives_each_dataloader_worker_its_own_stream() -> None:
    def run() -> list[torch.Tensor]:
        loader = torch.utils.data.DataLoader(_Repeated(ImageTrainTransform(8, seed=0)), batch_size=None, num_workers=2)
        return list(loader)

    first, second = run(), run()
    assert all(torch.equal(a, b) for a, b in zip(first, second)), "seeded runs must repeat"
    # items 0 and 1 are the first call of worker 0 and worker 1: a shared stream would make them equal
    assert not torch.equal(first[0], first[1])
