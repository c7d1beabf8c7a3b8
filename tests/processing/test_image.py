"""load_image converts every mode to the right RGB pixels and names broken or missing files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from vl_hub.processing.image import InvalidImageError, load_image, numpy_to_pil, to_rgb


def _px(image: Image.Image, xy: tuple[int, int] = (0, 0)) -> tuple[int, ...]:
    assert image.mode == "RGB"
    return tuple(int(v) for v in image.getpixel(xy))


def _composite(c: int, a: int, bg: int = 255) -> int:
    return round(c * a / 255 + bg * (255 - a) / 255)


def test_rgb_passthrough_and_file(tmp_path: Path) -> None:
    array = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    path = tmp_path / "rgb.png"
    Image.fromarray(array).save(path)
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == (5, 4)
    np.testing.assert_array_equal(np.asarray(loaded), array)
    assert np.asarray(load_image(str(path))).tolist() == array.tolist()


def test_grey_and_one_bit(tmp_path: Path) -> None:
    assert _px(load_image(Image.new("L", (2, 2), 77))) == (77, 77, 77)
    one = Image.new("1", (2, 1))
    one.putpixel((1, 0), 1)
    path = tmp_path / "one.png"
    one.save(path)
    loaded = load_image(path)
    assert _px(loaded, (0, 0)) == (0, 0, 0) and _px(loaded, (1, 0)) == (255, 255, 255)


def test_alpha_is_composited_over_white() -> None:
    rgba = Image.new("RGBA", (3, 1))
    rgba.putpixel((0, 0), (200, 50, 0, 0))
    rgba.putpixel((1, 0), (200, 50, 0, 255))
    rgba.putpixel((2, 0), (200, 50, 0, 64))
    out = load_image(rgba)
    assert _px(out, (0, 0)) == (255, 255, 255)
    assert _px(out, (1, 0)) == (200, 50, 0)
    # 200*64/255 + 255*191/255 = 50.2 + 191 -> 241; 50 -> 12.5+191 -> 204 (203.5 rounds up); 0 -> 191
    assert _px(out, (2, 0)) == (241, 204, 191)
    assert _px(out, (2, 0)) == tuple(_composite(c, 64) for c in (200, 50, 0))
    black = load_image(rgba, background=(0, 0, 0))
    assert _px(black, (0, 0)) == (0, 0, 0) and _px(black, (2, 0)) == (50, 13, 0)
    la = Image.new("LA", (1, 1), (100, 128))
    assert _px(load_image(la)) == (177, 177, 177)  # (100*128 + 255*127) / 255 = 177.2


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    palette = [10, 20, 30, 200, 100, 50] + [0] * (256 * 3 - 6)
    image = Image.new("P", (2, 1))
    image.putpalette(palette)
    image.putpixel((0, 0), 0)
    image.putpixel((1, 0), 1)
    plain = load_image(image)
    assert _px(plain, (0, 0)) == (10, 20, 30) and _px(plain, (1, 0)) == (200, 100, 50)
    image.info["transparency"] = 0
    path = tmp_path / "palette.png"
    image.save(path, transparency=0)
    for source in (image, path):
        out = load_image(source)
        assert _px(out, (0, 0)) == (255, 255, 255), "transparent palette entry must become the background"
        assert _px(out, (1, 0)) == (200, 100, 50)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 128, 129, 257 * 100, 40000, 65535]], dtype=np.uint16)
    expected = [0, 0, 1, 100, 156, 255]  # round(v / 257); 40000 / 257 = 155.6
    image = Image.fromarray(values)
    assert image.mode.startswith("I;16")
    assert [_px(load_image(image), (x, 0))[0] for x in range(6)] == expected
    path = tmp_path / "deep.png"
    image.save(path)
    reopened = Image.open(path)
    assert reopened.mode in ("I", "I;16")
    assert [_px(load_image(path), (x, 0)) for x in range(6)] == [(v, v, v) for v in expected]
    as_i = Image.fromarray(values.astype(np.int32))
    assert as_i.mode == "I"
    assert [_px(load_image(as_i), (x, 0))[0] for x in range(6)] == expected
    with pytest.raises(ValueError, match="16-bit range"):
        load_image(Image.fromarray(np.array([[-5, 70000]], dtype=np.int32)))


def test_float_mode() -> None:
    image = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert image.mode == "F"
    assert [_px(load_image(image), (x, 0))[0] for x in range(3)] == [0, 128, 255]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_image(Image.fromarray(np.array([[0.0, 200.0]], dtype=np.float32)))


def test_cmyk(tmp_path: Path) -> None:
    image = Image.new("CMYK", (1, 1), (100, 50, 0, 60))
    # (255 - c) * (255 - k) / 255: 155*195/255 = 118.5 -> 119; 205*195/255 = 156.8 -> 157; 195
    assert _px(load_image(image)) == (119, 157, 195)
    path = tmp_path / "cmyk.tif"
    image.save(path)
    assert _px(load_image(path)) == (119, 157, 195)
    assert _px(load_image(Image.new("CMYK", (1, 1), (0, 0, 0, 0)))) == (255, 255, 255)
    assert _px(load_image(Image.new("CMYK", (1, 1), (0, 0, 0, 255)))) == (0, 0, 0)


def test_other_colour_spaces() -> None:
    assert _px(load_image(Image.new("HSV", (1, 1), (0, 255, 255)))) == (255, 0, 0)
    assert _px(load_image(Image.new("YCbCr", (1, 1), (100, 128, 128)))) == (100, 100, 100)


def test_numpy_inputs() -> None:
    assert _px(load_image(np.full((2, 3), 9, dtype=np.uint8))) == (9, 9, 9)
    assert _px(load_image(np.full((2, 3, 1), 9, dtype=np.uint8))) == (9, 9, 9)
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[..., 1] = 70
    assert _px(load_image(rgb)) == (0, 70, 0)
    rgba = np.zeros((1, 1, 4), dtype=np.uint8)
    rgba[0, 0] = (0, 0, 0, 0)
    assert _px(load_image(rgba)) == (255, 255, 255)
    assert _px(load_image(np.full((1, 1), 65535, dtype=np.uint16))) == (255, 255, 255)
    assert _px(load_image(np.full((1, 1, 3), 0.5))) == (128, 128, 128)
    assert _px(load_image(np.ones((1, 1), dtype=bool))) == (255, 255, 255)
    assert _px(load_image(np.full((1, 1, 3), 200, dtype=np.int64))) == (200, 200, 200)
    with pytest.raises(ValueError, match="channel-first"):
        load_image(np.zeros((3, 8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        load_image(np.full((2, 2), 300, dtype=np.int64))
    with pytest.raises(ValueError, match="shape"):
        load_image(np.zeros((2, 2, 2, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        numpy_to_pil(np.full((2, 2), 2.0))


def _jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["jpg", "png"])
def test_truncated_file_raises_naming_it(tmp_path: Path, kind: str) -> None:
    data = _jpeg_bytes() if kind == "jpg" else _png_bytes()
    path = tmp_path / f"broken.{kind}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidImageError) as info:
        load_image(path)
    message = str(info.value)
    assert str(path) in message and "re-download" in message and "skip" in message
    assert isinstance(info.value, OSError) and isinstance(info.value, ValueError)


def test_truncated_file_raises_even_if_pil_flag_is_on(tmp_path: Path) -> None:
    data = _jpeg_bytes()
    path = tmp_path / "broken.jpg"
    path.write_bytes(data[: len(data) // 2])
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pytest.raises(InvalidImageError, match="truncated"):
            load_image(path)
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True, "the global flag must be restored"
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    loaded = load_image(path, allow_truncated=True)
    assert loaded.size == (64, 64)
    assert ImageFile.LOAD_TRUNCATED_IMAGES == previous


def test_not_an_image_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is text, not a JPEG")
    with pytest.raises(InvalidImageError, match="notes.jpg") as info:
        load_image(path)
    assert "re-download" in str(info.value)
    missing = tmp_path / "nowhere" / "x.png"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_image(missing)
    with pytest.raises(TypeError, match="path, a PIL.Image.Image or a numpy array"):
        load_image(42)  # type: ignore[arg-type]


def test_multi_frame_first_frame_and_exif(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (4, 4), (9, 9, 9)), Image.new("RGB", (4, 4), (200, 200, 200))]
    path = tmp_path / "two.tif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert _px(load_image(path)) == (9, 9, 9)

    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    Image.new("RGB", (6, 2), (255, 0, 0)).save(path, exif=exif)
    assert load_image(path).size == (6, 2)
    assert load_image(path, exif_transpose=True).size == (2, 6)


def test_to_rgb_returns_rgb_for_every_listed_mode() -> None:
    modes = ("1", "L", "LA", "La", "RGBA", "RGBa", "P", "PA", "I", "I;16", "I;16B", "F", "CMYK", "YCbCr", "LAB", "HSV")
    for mode in modes:
        out = to_rgb(Image.new(mode, (3, 2)))
        assert out.mode == "RGB" and out.size == (3, 2), mode
