"""The synthetic ``vl_hub_shapes`` data: coloured shapes on a white background, drawn from a seed.

Everything a label says can be read off the pixels: each object is a flat, fully saturated colour
from :data:`COLOURS` with one of the :data:`SHAPES`, objects never overlap, and two objects in one
image differ in both colour and shape (so "what colour is the circle?" has one answer). Videos show
one object crossing the frame in one of the :data:`DIRECTIONS`. The vocabulary is tiny on purpose:
a small captioning/VQA model learns it in minutes on a CPU (``vl-hub quickstart``).

The builder in ``dataset_scripts/vl_hub_shapes`` calls :func:`ensure_media` (writes the PNG/MP4
files once per seed and size, atomically) and :func:`task_rows` (one row per example, in a task
schema of :mod:`vl_hub.data.schemas`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: colour name -> RGB. Far apart in RGB so a pixel read at an object's centre names its colour,
#: even after lossy video compression.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 220),
    "yellow": (240, 210, 20),
    "purple": (150, 40, 190),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond")
DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")
BACKGROUND: tuple[int, int, int] = (255, 255, 255)
NUMBER_WORDS: dict[int, str] = {1: "1", 2: "2", 3: "3", 4: "4"}
NEUTRAL_ADJECTIVES: tuple[str, ...] = ("heavy", "soft", "new", "old")
SPLITS: tuple[str, ...] = ("train", "validation", "test")

#: bump when the drawing or the label logic changes: it is part of the media folder name.
GENERATOR_VERSION = 1

#: every answer a question can have (also the candidate options of the dialogue configs).
ANSWER_VOCABULARY: tuple[str, ...] = (*COLOURS, *SHAPES, *DIRECTIONS, "yes", "no", "1", "2")


@dataclass(frozen=True)
class ShapeObject:
    """One flat shape: ``(cx, cy)`` is its centre in pixels and ``half`` its half-extent."""

    shape: str
    colour: str
    cx: int
    cy: int
    half: int

    @property
    def name(self) -> str:
        """``"red circle"``."""
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """One image (objects sorted left to right) or one video (a single object and its ``direction``)."""

    objects: tuple[ShapeObject, ...]
    direction: str | None = None


# --------------------------------------------------------------------------------------------------
# scenes


def split_rng(seed: int, split: str, purpose: str) -> np.random.Generator:
    """A generator that depends only on (seed, split, purpose), so configs and splits are independent."""
    digest = hashlib.sha256(f"{seed}/{split}/{purpose}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def make_image_scenes(
    rng: np.random.Generator, count: int, image_size: int, min_objects: int = 1, max_objects: int = 2
) -> list[Scene]:
    """``count`` scenes of ``min_objects``..``max_objects`` (1 or 2) non-overlapping objects that
    differ in colour and in shape. Two objects sit in different halves (left/right) of the image."""
    if not 1 <= min_objects <= max_objects <= 2:
        raise ValueError(f"objects per image must satisfy 1 <= min <= max <= 2, got {min_objects}..{max_objects}")
    colours, shapes = list(COLOURS), list(SHAPES)
    scenes = []
    for _ in range(count):
        n = int(rng.integers(min_objects, max_objects + 1))
        picked_colours = rng.choice(len(colours), size=n, replace=False)
        picked_shapes = rng.choice(len(shapes), size=n, replace=False)
        objects = []
        for k in range(n):
            half = int(round(image_size * rng.uniform(0.12, 0.17)))
            # the object's box must stay inside its slot (whole image, or its half) with a 1 px margin
            lo_x, hi_x = (0, image_size) if n == 1 else (k * image_size // 2, (k + 1) * image_size // 2)
            cx = int(rng.integers(lo_x + half + 1, hi_x - half))
            cy = int(rng.integers(half + 1, image_size - half - 1))
            objects.append(ShapeObject(shapes[picked_shapes[k]], colours[picked_colours[k]], cx, cy, half))
        scenes.append(Scene(tuple(sorted(objects, key=lambda o: o.cx))))
    return scenes


def make_video_scenes(rng: np.random.Generator, count: int, image_size: int) -> list[Scene]:
    """``count`` one-object scenes, each with a direction; the object's position is its first frame's."""
    scenes = []
    for _ in range(count):
        half = int(round(image_size * rng.uniform(0.12, 0.16)))
        direction = DIRECTIONS[int(rng.integers(len(DIRECTIONS)))]
        start, end = half + 1, image_size - half - 2
        across = int(rng.integers(start, end + 1))
        cx, cy = {
            "right": (start, across),
            "left": (end, across),
            "down": (across, start),
            "up": (across, end),
        }[direction]
        obj = ShapeObject(
            SHAPES[int(rng.integers(len(SHAPES)))], list(COLOURS)[int(rng.integers(len(COLOURS)))], cx, cy, half
        )
        scenes.append(Scene((obj,), direction))
    return scenes


def video_positions(scene: Scene, image_size: int, num_frames: int) -> list[tuple[int, int]]:
    """Centre of the moving object in each frame: it crosses from one edge to the other."""
    obj = scene.objects[0]
    travel = image_size - 2 * obj.half - 3
    dx, dy = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}[scene.direction or "right"]
    steps = np.linspace(0, travel, num_frames).round().astype(int)
    return [(obj.cx + dx * int(s), obj.cy + dy * int(s)) for s in steps]


# --------------------------------------------------------------------------------------------------
# drawing


def draw(objects: Sequence[ShapeObject], image_size: int, centres: Sequence[tuple[int, int]] | None = None) -> Any:
    """A ``PIL.Image`` (RGB, ``image_size`` square) with ``objects`` drawn without anti-aliasing,
    optionally moved to ``centres``."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (image_size, image_size), BACKGROUND)
    pen = ImageDraw.Draw(image)
    for i, obj in enumerate(objects):
        cx, cy = centres[i] if centres is not None else (obj.cx, obj.cy)
        h, fill = obj.half, COLOURS[obj.colour]
        if obj.shape == "circle":
            pen.ellipse((cx - h, cy - h, cx + h, cy + h), fill=fill)
        elif obj.shape == "square":
            s = int(round(h * 0.85))  # same visual area as the circle, roughly
            pen.rectangle((cx - s, cy - s, cx + s, cy + s), fill=fill)
        elif obj.shape == "triangle":
            pen.polygon([(cx, cy - h), (cx - h, cy + h), (cx + h, cy + h)], fill=fill)
        elif obj.shape == "diamond":
            pen.polygon([(cx, cy - h), (cx + h, cy), (cx, cy + h), (cx - h, cy)], fill=fill)
        else:
            raise ValueError(f"unknown shape {obj.shape!r}; valid: {SHAPES}")
    return image


def write_video(frames: Sequence[np.ndarray], path: Path | str, fps: int = 8) -> None:
    """Encodes RGB ``frames`` (each ``(H, W, 3)`` uint8, H and W even) as an H.264 mp4 with PyAV
    (MPEG-4 part 2 when this PyAV build lacks libx264)."""
    import av

    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        try:
            stream = container.add_stream("libx264", rate=fps)
            stream.options = {"crf": "18", "preset": "veryfast"}
        except Exception:  # PyAV built without libx264
            stream = container.add_stream("mpeg4", rate=fps)
            stream.options = {"qscale": "2"}
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def media_key(seed: int, image_size: int, num_frames: int = 0, fps: int = 0) -> str:
    """Folder name under the media root for one seed/size (and video length)."""
    key = f"v{GENERATOR_VERSION}-seed{seed}-px{image_size}"
    return f"{key}-f{num_frames}-fps{fps}" if num_frames else key


def ensure_media(
    folder: Path | str,
    scenes: Sequence[Scene],
    kind: str,
    image_size: int,
    num_frames: int = 8,
    fps: int = 8,
) -> list[str]:
    """Writes one file per scene into ``folder`` (PNG for ``kind="image"``, MP4 for ``"video"``) unless
    a complete copy is already there; returns the absolute paths, in scene order.

    The files are written into a temporary sibling folder that is renamed into place at the end, so
    an interrupted run never leaves a half-written folder that a later run would trust.
    """
    if kind not in ("image", "video"):
        raise ValueError(f"kind must be 'image' or 'video', got {kind!r}")
    folder = Path(folder)
    suffix = ".png" if kind == "image" else ".mp4"
    names = [f"{i:06d}{suffix}" for i in range(len(scenes))]
    marker = folder / ".complete"
    if not (marker.is_file() and marker.read_text() == str(len(scenes))):
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            for name, scene in zip(names, scenes, strict=True):
                if kind == "image":
                    draw(scene.objects, image_size).save(tmp / name, format="PNG")
                else:
                    frames = [
                        np.asarray(draw(scene.objects, image_size, centres=[c]))
                        for c in video_positions(scene, image_size, num_frames)
                    ]
                    write_video(frames, tmp / name, fps=fps)
            (tmp / ".complete").write_text(str(len(scenes)))
            if folder.exists():
                shutil.rmtree(folder)
            try:
                os.rename(tmp, folder)
            except OSError:  # another process finished the same folder first: theirs is identical
                if not marker.is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return [str((folder / name).resolve()) for name in names]


# --------------------------------------------------------------------------------------------------
# language


def _a(obj: ShapeObject) -> str:
    return f"a {obj.name}"


def image_captions(scene: Scene) -> list[str]:
    """Three captions that each state every object's colour and shape (left to right first)."""
    objs = scene.objects
    if len(objs) == 1:
        return [_a(objs[0]), f"{_a(objs[0])} on a white background", f"there is {_a(objs[0])}"]
    left, right = objs
    return [
        f"{_a(left)} and {_a(right)}",
        f"{_a(left)} on the left and {_a(right)} on the right",
        f"there is {_a(right)} and {_a(left)}",
    ]


def video_captions(scene: Scene) -> list[str]:
    """Three captions naming the moving object and its direction."""
    obj, d = scene.objects[0], scene.direction
    return [f"{_a(obj)} moving {d}", f"{_a(obj)} moves {d}", f"{_a(obj)} is moving {d}"]


def video_summary(scene: Scene) -> str:
    """One sentence that also says where the object starts and ends."""
    ends = {"right": ("left", "right"), "left": ("right", "left"), "down": ("top", "bottom"), "up": ("bottom", "top")}
    start, end = ends[scene.direction or "right"]
    return f"{_a(scene.objects[0])} moves from the {start} to the {end}"


def _absent_object(scene: Scene, rng: np.random.Generator) -> tuple[str, str]:
    present = {(o.colour, o.shape) for o in scene.objects}
    choices = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
    return choices[int(rng.integers(len(choices)))]


def image_questions(scene: Scene, rng: np.random.Generator, count: int) -> list[tuple[str, str]]:
    """``count`` (question, answer) pairs of distinct kinds (colour / shape / count / presence) about
    ``scene``; presence questions are answered "yes" and "no" equally often."""
    kinds = ["colour", "shape", "count", "presence"]
    picked = [kinds[i] for i in rng.permutation(len(kinds))[:count]]
    while len(picked) < count:  # more questions than kinds: extra presence questions
        picked.append("presence")
    out = []
    for kind in picked:
        obj = scene.objects[int(rng.integers(len(scene.objects)))]
        if kind == "colour":
            out.append((f"what colour is the {obj.shape}?", obj.colour))
        elif kind == "shape":
            out.append((f"what shape is {obj.colour}?", obj.shape))
        elif kind == "count":
            out.append(("how many shapes are there?", NUMBER_WORDS[len(scene.objects)]))
        elif rng.random() < 0.5:
            out.append((f"is there {_a(obj)}?", "yes"))
        else:
            colour, shape = _absent_object(scene, rng)
            out.append((f"is there a {colour} {shape}?", "no"))
    return out


def video_questions(scene: Scene, rng: np.random.Generator, count: int) -> list[tuple[str, str]]:
    """``count`` (question, answer) pairs about the moving object (colour / shape / direction / yes-no)."""
    obj, d = scene.objects[0], scene.direction or "right"
    kinds = ["colour", "shape", "direction", "yesno"]
    picked = [kinds[i] for i in rng.permutation(len(kinds))[:count]]
    while len(picked) < count:
        picked.append("yesno")
    out = []
    for kind in picked:
        if kind == "colour":
            out.append((f"what colour is the {obj.shape}?", obj.colour))
        elif kind == "shape":
            out.append(("what shape is moving?", obj.shape))
        elif kind == "direction":
            out.append((f"which way is the {obj.shape} moving?", d))
        elif rng.random() < 0.5:
            out.append((f"is the {obj.shape} moving {d}?", "yes"))
        else:
            other = [x for x in DIRECTIONS if x != d][int(rng.integers(len(DIRECTIONS) - 1))]
            out.append((f"is the {obj.shape} moving {other}?", "no"))
    return out


def nlvr_statement(left: Scene, right: Scene, rng: np.random.Generator) -> tuple[str, bool]:
    """A sentence about the image pair and whether it is true; true and false are equally likely."""
    want = bool(rng.random() < 0.5)
    sentence, truth = "", False
    for _ in range(64):  # rejection sampling: a template with random slots until the truth matches
        kind = int(rng.integers(4))
        colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        side, scene = (("left", left), ("right", right))[int(rng.integers(2))]
        if kind == 0:
            sentence = f"the {side} image contains a {colour} {shape}"
            truth = any(o.colour == colour and o.shape == shape for o in scene.objects)
        elif kind == 1:
            sentence = f"both images contain a {shape}"
            truth = all(any(o.shape == shape for o in s.objects) for s in (left, right))
        elif kind == 2:
            total = int(rng.integers(2, 5))
            sentence = f"there are {NUMBER_WORDS[total]} shapes in total"
            truth = len(left.objects) + len(right.objects) == total
        else:
            sentence = f"both images contain something {colour}"
            truth = all(any(o.colour == colour for o in s.objects) for s in (left, right))
        if truth == want:
            break
    return sentence, truth


def entailment_hypotheses(scene: Scene, rng: np.random.Generator) -> list[tuple[str, str]]:
    """Three (hypothesis, label) pairs: one entailed, one neutral (an unseeable property of a present
    object: "the red circle is heavy"), one contradicted."""
    obj = scene.objects[int(rng.integers(len(scene.objects)))]
    n = len(scene.objects)
    entailed = [
        f"there is {_a(obj)}",
        f"the {obj.shape} is {obj.colour}",
        f"there {'is' if n == 1 else 'are'} {NUMBER_WORDS[n]} {'shape' if n == 1 else 'shapes'}",
    ]
    colour, shape = _absent_object(scene, rng)
    wrong_colour = [c for c in COLOURS if c != obj.colour][int(rng.integers(len(COLOURS) - 1))]
    wrong_n = 3 - n  # 1 <-> 2
    contradicted = [
        f"there is a {colour} {shape}",
        f"there is no {obj.name}",
        f"the {obj.shape} is {wrong_colour}",
        f"there {'is' if wrong_n == 1 else 'are'} {NUMBER_WORDS[wrong_n]} {'shape' if wrong_n == 1 else 'shapes'}",
    ]
    adjective = NEUTRAL_ADJECTIVES[int(rng.integers(len(NEUTRAL_ADJECTIVES)))]
    return [
        (entailed[int(rng.integers(len(entailed)))], "entailment"),
        (f"the {obj.name} is {adjective}", "neutral"),
        (contradicted[int(rng.integers(len(contradicted)))], "contradiction"),
    ]


# --------------------------------------------------------------------------------------------------
# rows per task


def scenes_for(task: str, seed: int, split: str, count: int, image_size: int) -> tuple[str, list[Scene]]:
    """(media kind, scenes) that ``task`` draws its ``split`` from: videos for the video tasks,
    single-object images for classification, 1-2 object images otherwise."""
    if task.startswith("video"):
        return "video", make_video_scenes(split_rng(seed, split, "video"), count, image_size)
    if task == "classification":
        return "image_single", make_image_scenes(split_rng(seed, split, "image_single"), count, image_size, 1, 1)
    return "image", make_image_scenes(split_rng(seed, split, "image"), count, image_size)


def class_names(label_by: str) -> list[str]:
    """Class names of the classification config: the shapes, or the colours."""
    if label_by == "shape":
        return list(SHAPES)
    if label_by in ("colour", "color"):
        return list(COLOURS)
    raise ValueError(f"label_by must be 'shape' or 'colour', got {label_by!r}")


def task_rows(
    task: str,
    split: str,
    scenes: Sequence[Scene],
    paths: Sequence[str],
    seed: int,
    questions_per_image: int = 2,
    dialog_rounds: int = 3,
    label_by: str = "shape",
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(key, row)`` for every example of ``task`` in ``split``, in the task's schema.

    ``paths[i]`` is the media file of ``scenes[i]``. Keys are ``"<split>-<scene>-<k>"``.
    """
    rng = split_rng(seed, split, task)
    n = len(scenes)
    for i, (scene, path) in enumerate(zip(scenes, paths, strict=True)):
        media_id = f"{split}_{i:06d}"
        if task == "image_text":
            yield f"{i}", {"image_id": media_id, "image": path, "captions": image_captions(scene)}
        elif task == "video_text":
            yield f"{i}", {"video_id": media_id, "video": path, "captions": video_captions(scene)}
        elif task == "vqa":
            for k, (q, a) in enumerate(image_questions(scene, rng, questions_per_image)):
                yield f"{i}-{k}", {
                    "question_id": f"{media_id}_{k}",
                    "image_id": media_id,
                    "image": path,
                    "question": q,
                    "answers": [a] * 10,  # ten annotators, as in VQAv2, who all agree
                    "choices": [],
                    "correct_choice": -1,
                    "rationales": [],
                }
        elif task == "video_qa":
            for k, (q, a) in enumerate(video_questions(scene, rng, questions_per_image)):
                yield f"{i}-{k}", {
                    "question_id": f"{media_id}_{k}",
                    "video_id": media_id,
                    "video": path,
                    "question": q,
                    "answers": [a],
                }
        elif task == "nlvr":
            j = (i + 1) % n
            sentence, truth = nlvr_statement(scene, scenes[j], rng)
            yield f"{i}", {
                "id": f"{media_id}_pair",
                "image0": path,
                "image1": paths[j],
                "sentence": sentence,
                "label": int(truth),
            }
        elif task == "entailment":
            for k, (hypothesis, label) in enumerate(entailment_hypotheses(scene, rng)):
                yield f"{i}-{k}", {
                    "id": f"{media_id}_{k}",
                    "image_id": media_id,
                    "image": path,
                    "hypothesis": hypothesis,
                    "label": label,
                }
        elif task == "classification":
            obj = scene.objects[0]
            yield f"{i}", {"image_id": media_id, "image": path, "label": obj.shape if label_by == "shape" else obj.colour}
        elif task in ("visual_dialog", "video_dialog"):
            video = task == "video_dialog"
            turns = (video_questions if video else image_questions)(scene, rng, dialog_rounds)
            caption = (video_captions if video else image_captions)(scene)[0]
            for r, (q, a) in enumerate(turns):
                history = [{"question": hq, "answer": ha} for hq, ha in turns[:r]]
                if video:
                    yield f"{i}-{r}", {
                        "dialog_id": media_id,
                        "video_id": media_id,
                        "video": path,
                        "caption": caption,
                        "summary": video_summary(scene),
                        "history": history,
                        "round": r,
                        "question": q,
                        "answer": a,
                    }
                else:
                    yield f"{i}-{r}", {
                        "dialog_id": media_id,
                        "image_id": media_id,
                        "image": path,
                        "caption": caption,
                        "history": history,
                        "round": r,
                        "question": q,
                        "answer": a,
                        "options": list(ANSWER_VOCABULARY),
                        "gt_index": ANSWER_VOCABULARY.index(a),
                        "relevance": [],
                    }
        else:
            from vl_hub.data.schemas import SCHEMAS

            raise ValueError(f"unknown task {task!r}; valid: {', '.join(SCHEMAS)}")
