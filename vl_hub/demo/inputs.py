"""What the page sends, checked: images, texts, class lists; and the wrapper that turns a failed request into a
readable message in the page instead of a crash.

Every handler of the demo raises :class:`DemoInputError` for input a user can fix (no image, an unreadable file,
an empty question, a dataset folder that is missing). :func:`ui_handler` wraps a handler for Gradio: the message
appears in the tab's status box and as a ``gr.Warning`` toast; the other outputs keep their values, and the server
keeps serving.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

logger = logging.getLogger(__name__)

__all__ = [
    "DemoInputError",
    "UnreadableUpload",
    "class_list",
    "read_image",
    "require_text",
    "servable_copy",
    "status_error",
    "status_ok",
    "ui_handler",
]


class DemoInputError(ValueError):
    """Input the user can fix; its message is shown in the page as it is."""


class UnreadableUpload(str):
    """An uploaded file Gradio could not open as an image: the path, with the reason in :attr:`reason`
    (what :func:`vl_hub.demo.components.image_input` hands to the handlers instead of failing before them)."""

    reason: str

    def __new__(cls, path: str, reason: str) -> UnreadableUpload:
        obj = super().__new__(cls, path)
        obj.reason = reason
        return obj


def read_image(value: Any, what: str = "image") -> Image.Image:
    """The page's image input as an RGB PIL image.

    Args:
        value: ``None`` (nothing uploaded), a file path, an :class:`UnreadableUpload`, a PIL image or an array.
        what: how the message calls the input.

    Raises:
        DemoInputError: nothing uploaded, or a file that is not a readable image.
    """
    if value is None or (isinstance(value, str) and not value):
        raise DemoInputError(f"No {what}: upload an image (or pick an example) first.")
    if isinstance(value, UnreadableUpload):
        raise DemoInputError(
            f"The uploaded file {Path(value).name!r} is not a readable image ({value.reason}). Upload a PNG, JPEG, "
            "WebP, BMP or GIF file."
        )
    if isinstance(value, Image.Image):
        image = value
    elif isinstance(value, (str, os.PathLike)):
        try:
            with Image.open(value) as opened:
                opened.load()
                image = opened.copy()
        except FileNotFoundError:
            raise DemoInputError(f"The {what} file {str(value)!r} does not exist any more; upload it again.") from None
        except Exception as err:  # PIL raises several types for broken files
            raise DemoInputError(
                f"The file {Path(value).name!r} is not a readable image ({type(err).__name__}: {err}). Upload a PNG, "
                "JPEG, WebP, BMP or GIF file."
            ) from None
    else:
        import numpy as np

        try:
            image = Image.fromarray(np.asarray(value))
        except Exception as err:
            raise DemoInputError(f"The {what} could not be read ({type(err).__name__}: {err}).") from None
    if image.mode != "RGB":
        image = _to_rgb(image)
    if min(image.size) < 1:
        raise DemoInputError(f"The {what} is empty ({image.size[0]} x {image.size[1]} pixels).")
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))  # transparent areas over white, as the processors do
        return background
    return image.convert("RGB")


def require_text(value: Any, what: str = "text", example: str = "") -> str:
    """``value`` stripped; raises :class:`DemoInputError` when it is empty."""
    text = "" if value is None else str(value).strip()
    if not text:
        hint = f" (for example: {example!r})" if example else ""
        raise DemoInputError(f"The {what} is empty: type one{hint}.")
    return text


def class_list(value: Any, minimum: int = 2) -> list[str]:
    """Comma- or newline-separated class names -> a list without blanks or duplicates (order kept).

    Raises:
        DemoInputError: fewer than ``minimum`` names.
    """
    text = "" if value is None else str(value)
    names = list(dict.fromkeys(n.strip() for n in text.replace("\n", ",").split(",") if n.strip()))
    if len(names) < minimum:
        raise DemoInputError(
            f"Give at least {minimum} class names separated by commas (got {len(names)}: {names}); for example "
            "'circle, square, triangle'."
        )
    return names


def servable_copy(path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> str:
    """A copy (hard link where possible) of ``path`` under the system temp folder, which Gradio serves without
    ``allowed_paths``; the name is keyed by the source path, size and time so repeated pages reuse it."""
    source = Path(path)
    stat = source.stat()
    key = hashlib.sha1(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    root = Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir()) / "vl_hub_demo" / "media"
    target = root / key / source.name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}")
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    return str(target)


def status_ok(message: str) -> str:
    """Status-box Markdown of a request that succeeded."""
    return f"✓ {message}" if message else ""


def _escape_markdown(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>#|])", r"\\\1", text)


def status_error(message: str) -> str:
    """Status-box Markdown of a request that failed: the first line in bold, further lines (download
    instructions, a listing of valid names) as a preformatted block."""
    lines = message.strip().splitlines() or ["Error"]
    markdown = f"⚠ **{_escape_markdown(lines[0])}**"
    rest = "\n".join(lines[1:]).strip("\n")
    if rest:
        markdown += f"\n\n```text\n{rest}\n```"
    return markdown


def _warn(message: str) -> None:
    try:
        import gradio as gr

        gr.Warning(message, duration=8)
    except Exception:  # outside a Gradio request (tests, scripts) there is no page to show a toast in
        logger.debug("could not show a gr.Warning toast", exc_info=True)


#: errors whose message is written for users: shown as they are
_READABLE = (DemoInputError,)


def _readable_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = list(_READABLE)
    try:
        from vl_hub.data.builder_utils import MissingDataError

        found.append(MissingDataError)
    except ImportError:  # pragma: no cover - the data package is part of vl_hub
        pass
    try:
        from vl_hub.zoo import ModelNotAvailableError, UnknownModelError

        found.extend([ModelNotAvailableError, UnknownModelError])
    except ImportError:  # pragma: no cover
        pass
    return tuple(found)


def ui_handler(
    fn: Callable[..., Sequence[Any]], num_outputs: int, keep_outputs: bool = False
) -> Callable[..., tuple[Any, ...]]:
    """Wraps ``fn`` (returning ``num_outputs`` values followed by the status Markdown) for a Gradio event.

    On an error the outputs are emptied (so no earlier result stands next to the message) or, with
    ``keep_outputs``, left as they are (the dataset browser keeps its page); the status box shows the message and a
    ``gr.Warning`` toast repeats it. :class:`DemoInputError`, a missing dataset folder and an unavailable model show
    their own message; any other exception shows its type and message and is logged with its traceback.
    """
    readable = _readable_errors()

    @functools.wraps(fn)
    def wrapper(*args: Any) -> tuple[Any, ...]:
        try:
            result = tuple(fn(*args))
        except readable as err:
            message = str(err).strip() or type(err).__name__
        except Exception as err:  # the server must keep serving whatever a model or a file does
            logger.exception("demo handler %s failed", getattr(fn, "__name__", fn))
            message = f"Something went wrong: {type(err).__name__}: {err}"
        else:
            if len(result) != num_outputs + 1:
                raise RuntimeError(f"{fn.__name__} returned {len(result)} values, expected {num_outputs} + status")
            return result
        import gradio as gr

        _warn(message.splitlines()[0])
        unchanged = [gr.update() if keep_outputs else gr.update(value=None) for _ in range(num_outputs)]
        return (*unchanged, status_error(message))

    return wrapper
