"""A deterministic, seeded generator of short videos with exact per-object annotations.

Each video has a textured background and several textured objects (shapes and colours from a named
palette, some alike as distractors) that move in distinct ways, occlude each other and may leave the
frame. For every object the generator knows, per frame, its box (the full extent, clipped to the
image; ``NaN`` when out of view), its visible mask, its motion class and a sentence describing it.
Video ``i`` of seed ``s`` is the same whatever the number of videos asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from datamodules.action_tubes import Tube, VideoTubes

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 40),
    "purple": (150, 60, 190),
    "orange": (245, 140, 30),
    "cyan": (40, 200, 210),
    "white": (240, 240, 240),
}
SHAPES = ("circle", "square", "triangle", "diamond")
MOTIONS = ("linear", "bouncing", "circular", "zigzag", "still", "growing", "shrinking")
TUBE_CLASSES = tuple(m for m in MOTIONS if m != "still")  # standing still is no action


@dataclass
class SynthConfig:
    """Size and content of the generated videos."""

    height: int = 180
    width: int = 240
    num_frames: int = 40
    fps: float = 25.0
    min_objects: int = 2
    max_objects: int = 4
    min_size: int = 10  # half-extent in pixels
    max_size: int = 26
    # appearance change over a video (0: none): each object's colour drifts this far (0 to 1) toward another
    # palette colour, and the light's gain swings by half this much around 1
    appearance_change: float = 0.0


@dataclass
class ObjectTrack:
    """One object's ground truth over the video."""

    shape: str
    colour: str
    motion: str
    sentence: str
    boxes: np.ndarray  # (T, 4) float x, y, w, h in pixels (integers), NaN where out of view
    masks: np.ndarray  # (T, H, W) bool, the visible pixels

    @property
    def visible(self) -> np.ndarray:
        return ~np.isnan(self.boxes[:, 0])


@dataclass
class SyntheticVideo:
    """Frames and annotations; object 0 is the target (tracking) and its motion the label (action)."""

    name: str
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    objects: list[ObjectTrack]
    fps: float
    label: int = field(default=0)

    @property
    def target(self) -> ObjectTrack:
        return self.objects[0]


def _texture(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth random texture in [0, 1], (h, w)."""
    small = rng.random((cells, cells)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = rng.uniform(60, 150, size=3)
    tint = rng.uniform(-40, 40, size=3)
    tex = _texture(rng, h, w, int(rng.integers(4, 12)))[..., None]
    grain = rng.normal(0, 6, size=(h, w, 1))
    return np.clip(base + tint * (2 * tex - 1) + grain, 0, 255).astype(np.float32)


def _shape_mask(shape: str, cx: int, cy: int, r: int, h: int, w: int) -> np.ndarray:
    """Mask of a shape that fills its box [cx - r, cx + r] x [cy - r, cy + r] (all four sides touched)."""
    ys, xs = np.ogrid[:h, :w]
    dx, dy = xs - cx, ys - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r + r  # +r: the four extreme pixels are inside
    if shape == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= r
    if shape == "triangle":  # apex at the top, base at the bottom
        return (dy >= -r) & (dy <= r) & (2 * np.abs(dx) <= dy + r)
    raise ValueError(f"unknown shape {shape!r}")


class _Motion:
    """Centre and half-size of an object at frame t."""

    def __init__(self, kind: str, rng: np.random.Generator, cfg: SynthConfig, r: int, keep_inside: bool):
        self.kind, self.r, self.cfg = kind, r, cfg
        h, w, T = cfg.height, cfg.width, cfg.num_frames
        margin = r + 2 if keep_inside else 0
        self.x0 = rng.uniform(margin or r, w - (margin or r))
        self.y0 = rng.uniform(margin or r, h - (margin or r))
        angle = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(1.5, 3.5)
        if kind == "linear" and keep_inside:  # cross the frame without leaving it
            speed = min(speed, 0.8 * min(w, h) / 2 / T)
            self.x0, self.y0 = w / 2 - np.cos(angle) * speed * T / 2, h / 2 - np.sin(angle) * speed * T / 2
        self.vx, self.vy = np.cos(angle) * speed, np.sin(angle) * speed
        self.radius = rng.uniform(0.15, 0.3) * min(h, w)
        self.omega = rng.choice([-1, 1]) * rng.uniform(0.1, 0.2)
        self.phase = rng.uniform(0, 2 * np.pi)
        if kind == "circular":
            self.radius = min(self.radius, min(h, w) / 2 - r - 2)
            self.x0, self.y0 = w / 2 + rng.uniform(-0.1, 0.1) * w, h / 2 + rng.uniform(-0.1, 0.1) * h
        self.zig_period = int(rng.integers(6, 12))

    def __call__(self, t: int) -> tuple[float, float, float]:
        cfg, r = self.cfg, self.r
        if self.kind == "linear":
            return self.x0 + self.vx * t, self.y0 + self.vy * t, r
        if self.kind == "bouncing":
            return (_reflect(self.x0 + self.vx * t, r, cfg.width - 1 - r),
                    _reflect(self.y0 + self.vy * t, r, cfg.height - 1 - r), r)
        if self.kind == "circular":
            a = self.phase + self.omega * t
            return self.x0 + self.radius * np.cos(a), self.y0 + self.radius * np.sin(a), r
        if self.kind == "zigzag":
            sign = np.sign(self.vx) or 1.0
            leg = (t // self.zig_period) % 2
            phase_t = t % self.zig_period
            dy = (phase_t if leg == 0 else self.zig_period - phase_t) * 2.5 - self.zig_period * 1.25
            x = _reflect(self.x0 + sign * 2.0 * t, r, cfg.width - 1 - r)
            return x, np.clip(self.y0 + dy, r, cfg.height - 1 - r), r
        if self.kind == "still":
            return self.x0, self.y0, r
        if self.kind in ("growing", "shrinking"):
            f = t / max(cfg.num_frames - 1, 1)
            scale = 0.5 + f if self.kind == "growing" else 1.5 - f
            return self.x0, self.y0, r * scale
        raise ValueError(f"unknown motion {self.kind!r}")


def _reflect(x: float, lo: float, hi: float) -> float:
    """Bounce ``x`` between ``lo`` and ``hi``."""
    span = hi - lo
    if span <= 0:
        return lo
    u = (x - lo) % (2 * span)
    return lo + (u if u <= span else 2 * span - u)


def describe(size: str, colour: str, shape: str, motion: str, vx: float, vy: float) -> str:
    """The sentence for an object, e.g. 'the small red circle moving left' (no size word when ``size`` is empty)."""
    if motion == "linear":
        what = ("moving right" if vx > 0 else "moving left") if abs(vx) >= abs(vy) else (
            "moving down" if vy > 0 else "moving up")
    else:
        what = {
            "bouncing": "bouncing around",
            "circular": "moving in a circle",
            "zigzag": "zig-zagging " + ("to the right" if vx >= 0 else "to the left"),
            "still": "standing still",
            "growing": "growing",
            "shrinking": "shrinking",
        }[motion]
    return " ".join(word for word in ("the", size, colour, shape, what) if word)


def referring_sentence(video: SyntheticVideo) -> str:
    """The target's sentence, made to single it out in the first frame as OTB99-lang's annotators did: when
    another object visible there has its colour and shape, where the target is ("on the left", "at the top",
    ...) is added."""
    target = video.target
    boxes = [o.boxes[0] for o in video.objects[1:] if o.visible[0] and (o.colour, o.shape) == (target.colour,
                                                                                              target.shape)]
    if not boxes:
        return target.sentence
    centre = target.boxes[0, :2] + target.boxes[0, 2:] / 2
    others = np.stack([b[:2] + b[2:] / 2 for b in boxes])
    gaps = {  # how far the target is beyond every look-alike, per side
        "on the left": (others[:, 0] - centre[0]).min(), "on the right": (centre[0] - others[:, 0]).min(),
        "at the top": (others[:, 1] - centre[1]).min(), "at the bottom": (centre[1] - others[:, 1]).min(),
    }
    side, gap = max(gaps.items(), key=lambda kv: kv[1])
    return f"{target.sentence} {side if gap > 0 else 'in the middle'}"


def generate_video(
    seed: int,
    index: int,
    cfg: SynthConfig | None = None,
    target_motion: str | None = None,
    distractor_motions: tuple[str, ...] = MOTIONS,
) -> SyntheticVideo:
    """Video ``index`` of ``seed``; ``target_motion`` fixes the motion (and label) of object 0, and
    ``distractor_motions`` the motions the other objects draw from (``("still",)`` for action labels
    that only the target's motion explains)."""
    cfg = cfg or SynthConfig()
    rng = np.random.default_rng([seed, index])
    n_obj = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    motion0 = target_motion or MOTIONS[int(rng.integers(len(MOTIONS)))]
    specs = []
    for k in range(n_obj):
        if k > 0 and rng.random() < 0.35:  # a distractor alike the target
            shape, colour = specs[0][0], specs[0][1]
        else:
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            colour = list(PALETTE)[int(rng.integers(len(PALETTE)))]
        motion = motion0 if k == 0 else distractor_motions[int(rng.integers(len(distractor_motions)))]
        r = int(rng.integers(cfg.min_size, cfg.max_size + 1))
        specs.append((shape, colour, motion, r))
    # object 0 stays in view; others may leave the frame. Depth order is random (occlusions).
    frames, boxes, masks, motions = _render(rng, cfg, specs, keep_inside=[k == 0 for k in range(n_obj)])
    sizes = [r for *_, r in specs]
    objects = []
    for k, (shape, colour, motion, r) in enumerate(specs):
        size = "small" if r <= np.median(sizes) else "large"
        sentence = describe(size, colour, shape, motion, motions[k].vx, motions[k].vy)
        objects.append(ObjectTrack(shape, colour, motion, sentence, boxes[k], masks[k]))
    return SyntheticVideo(f"synth{seed:03d}_{index:05d}", frames, objects, cfg.fps, MOTIONS.index(motion0))


def generate_actor_video(seed: int, index: int, cfg: SynthConfig | None = None, alike: float = 1.0) -> SyntheticVideo:
    """Video ``index`` of ``seed`` for referring segmentation (A2D Sentences): ``min_objects`` to ``max_objects``
    actors, all kept in view, each with its own motion; with probability ``alike`` actor 1 has actor 0's shape,
    colour and size and another motion, so only its action tells them apart. Sentences name the look and the
    action and no size ("the red square moving left")."""
    cfg = cfg or SynthConfig()
    rng = np.random.default_rng([seed, index])
    n_obj = int(rng.integers(max(cfg.min_objects, 2), max(cfg.max_objects, 2) + 1))
    specs: list[tuple[str, str, str, int]] = []
    for k in range(n_obj):
        taken = [m for *_, m, _ in specs[:1]] if k == 1 else []
        motion = [m for m in MOTIONS if m not in taken][int(rng.integers(len(MOTIONS) - len(taken)))]
        if k == 1 and rng.random() < alike:
            specs.append((specs[0][0], specs[0][1], motion, specs[0][3]))
            continue
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        colour = list(PALETTE)[int(rng.integers(len(PALETTE)))]
        specs.append((shape, colour, motion, int(rng.integers(cfg.min_size, cfg.max_size + 1))))
    frames, boxes, masks, motions = _render(rng, cfg, specs, keep_inside=[True] * n_obj)
    objects = [
        ObjectTrack(shape, colour, motion, describe("", colour, shape, motion, motions[k].vx, motions[k].vy),
                    boxes[k], masks[k])
        for k, (shape, colour, motion, _) in enumerate(specs)
    ]
    return SyntheticVideo(f"actors{seed:03d}_{index:05d}", frames, objects, cfg.fps, MOTIONS.index(specs[0][2]))


def _render(
    rng: np.random.Generator,
    cfg: SynthConfig,
    specs: list[tuple[str, str, str, int]],
    keep_inside: list[bool],
    motions: list[_Motion] | None = None,
    spans: list[tuple[int, int]] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[_Motion]]:
    """Frames (T, H, W, 3), boxes (n, T, 4), visible masks (n, T, H, W) and the motions of objects ``specs``
    (shape, colour, motion, half-size), drawn from ``rng`` in a fixed order. Given ``motions`` are used as they
    are; with ``spans`` object k exists only in frames ``spans[k][0] .. spans[k][1]`` (0-based, inclusive), and its
    motion runs from its own first frame (time ``t - spans[k][0]``)."""
    h, w, T = cfg.height, cfg.width, cfg.num_frames
    n_obj = len(specs)
    if motions is None:
        motions = [_Motion(m, rng, cfg, r, keep_inside=keep_inside[k]) for k, (_, _, m, r) in enumerate(specs)]
    spans = spans or [(0, T - 1)] * n_obj
    depth = rng.permutation(n_obj)  # drawn back to front
    textures = [_texture(rng, h, w, int(rng.integers(8, 20))) for _ in range(n_obj)]
    background = _background(rng, h, w)
    colours = np.array([[PALETTE[c] for _, c, _, _ in specs]] * T, np.float32)  # (T, n_obj, 3)
    gain = np.ones(T, np.float32)
    if cfg.appearance_change > 0:  # drawn last, so videos without it are unchanged
        ramp = np.linspace(0, cfg.appearance_change, T, dtype=np.float32)[:, None, None]
        goal = np.array([PALETTE[list(PALETTE)[int(i)]] for i in rng.integers(len(PALETTE), size=n_obj)], np.float32)
        colours = colours + (goal[None] - colours) * ramp
        phase, cycles = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.5)
        swing = np.sin(phase + 2 * np.pi * cycles * np.arange(T) / T)
        gain = (1 + 0.5 * cfg.appearance_change * swing).astype(np.float32)

    frames = np.empty((T, h, w, 3), np.uint8)
    boxes = np.full((n_obj, T, 4), np.nan)
    masks = np.zeros((n_obj, T, h, w), bool)
    for t in range(T):
        canvas = background.copy()
        for k in depth:
            if not spans[k][0] <= t <= spans[k][1]:
                continue
            shape, colour, _, _ = specs[k]
            cx, cy, rr = motions[k](t - spans[k][0])
            cx, cy, rr = int(round(cx)), int(round(cy)), max(int(round(rr)), 2)
            full = _shape_mask(shape, cx, cy, rr, h, w)
            if not full.any():
                continue
            x1, y1 = max(cx - rr, 0), max(cy - rr, 0)
            x2, y2 = min(cx + rr, w - 1), min(cy + rr, h - 1)
            boxes[k, t] = (x1, y1, x2 - x1 + 1, y2 - y1 + 1)
            shade = 0.75 + 0.5 * textures[k][full][:, None]
            canvas[full] = np.clip(colours[t, k] * shade, 0, 255)
            masks[:, t][:, full] = False  # what is in front hides what is behind
            masks[k, t] = full
        frames[t] = np.clip(canvas * gain[t], 0, 255).astype(np.uint8)
    return frames, boxes, masks, motions


@dataclass
class TubeVideo(SyntheticVideo):
    """An untrimmed video for spatio-temporal action detection: ``objects[k]`` is actor k, whose action is its
    motion (``classes.index(motion)`` its label) and who is in the video exactly during its tube, ``spans[k]`` =
    (first, last) 1-based frame numbers; its ``boxes`` are NaN outside the tube. ``label``: the video's class
    (actor 0's)."""

    classes: tuple[str, ...] = TUBE_CLASSES
    spans: list[tuple[int, int]] = field(default_factory=list)

    def actor_label(self, k: int) -> int:
        return self.classes.index(self.objects[k].motion)

    def tubes(self) -> list[Tube]:
        """The actors' ground-truth tubes: rows ``frame, x1, y1, x2, y2`` with ``x2 = x + w`` (the pixel after the
        box's last one, as the ``pyannot.pkl`` reader takes it), clipped to the image."""
        tubes = []
        for k, obj in enumerate(self.objects):
            first, last = self.spans[k]
            x, y, w, h = obj.boxes[first - 1:last].T
            frames = np.arange(first, last + 1, dtype=np.float64)
            tubes.append(Tube(self.actor_label(k), np.stack([frames, x, y, x + w, y + h], axis=1)))
        return tubes

    def video_tubes(self, name: str | None = None) -> VideoTubes:
        """This video's annotation under ``name`` (default its own)."""
        h, w = self.frames.shape[1:3]
        return VideoTubes(name or self.name, len(self.frames), (h, w), self.label, self.tubes())


def _tube_span(rng: np.random.Generator, num_frames: int, fraction: tuple[float, float], trimmed: bool
               ) -> tuple[int, int]:
    """0-based first and last frame of a tube of ``fraction`` of the video, with at least one frame without it
    before and after (the whole video when ``trimmed``)."""
    length = int(round(rng.uniform(*fraction) * num_frames))
    length = min(max(length, 2), num_frames - 2)
    start = int(rng.integers(1, num_frames - length))  # drawn even when trimmed: the same draws either way
    if trimmed or num_frames < 4:
        return 0, num_frames - 1
    return start, start + length - 1


def _shows_its_motion(motion: _Motion, length: int) -> bool:
    """Whether ``length`` frames of ``motion`` tell its class: a bouncing actor must bounce at least once (else it
    moves like a linear one)."""
    if motion.kind != "bouncing":
        return True
    xy = np.array([motion(t)[:2] for t in range(length)])
    step = np.sign(np.round(np.diff(xy, axis=0), 6))
    return bool((step[1:] * step[:-1] < 0).any())


def generate_tube_video(
    seed: int,
    index: int,
    cfg: SynthConfig | None = None,
    classes: tuple[str, ...] = TUBE_CLASSES,
    actors: tuple[int, int] = (1, 2),
    label: int | str | None = None,
    same_class: bool = True,
    tube_fraction: tuple[float, float] = (0.5, 0.85),
    trimmed: bool = False,
) -> TubeVideo:
    """Video ``index`` of ``seed`` for spatio-temporal action detection (UCF101-24 / J-HMDB / UCF-Sports style).

    ``actors[0]`` to ``actors[1]`` actors, kept in view and free to occlude each other. An actor's class is its
    motion (one of ``classes``, names from ``MOTIONS``); its look (shape, colour, size) is drawn before and
    independently of the class, so one frame cannot tell the action and only motion can. ``label`` fixes the
    video's class (index into ``classes`` or name); with ``same_class`` every actor does it, as in UCF101-24 where
    all tubes of a video carry the video's label, else each actor draws its own. Each tube lasts
    ``tube_fraction`` of the video and starts and ends inside it; the actor is absent before and after (as in
    UCF101-24, whose boxes exist only during the action). ``trimmed``: tubes cover the whole video (J-HMDB,
    UCF-Sports). The motion runs over the tube as if the tube were the video (a linear actor crosses, a growing one
    doubles, within its tube). Changing ``label`` changes only the motions: the looks and spans stay the same."""
    cfg = cfg or SynthConfig()
    unknown = [c for c in classes if c not in MOTIONS]
    if unknown or not classes:
        raise ValueError(f"classes must be motions of {MOTIONS}, not {unknown or 'none'}")
    if isinstance(label, str):
        label = classes.index(label)
    rng = np.random.default_rng([seed, index, 1])  # its own stream: not the videos of generate_video
    n_actors = int(rng.integers(actors[0], actors[1] + 1))
    looks = [(SHAPES[int(rng.integers(len(SHAPES)))], list(PALETTE)[int(rng.integers(len(PALETTE)))],
              int(rng.integers(cfg.min_size, cfg.max_size + 1))) for _ in range(n_actors)]
    spans = [_tube_span(rng, cfg.num_frames, tube_fraction, trimmed) for _ in range(n_actors)]
    drawn = [int(rng.integers(len(classes))) for _ in range(n_actors)]
    video_label = drawn[0] if label is None else int(label)
    labels = [video_label if same_class or k == 0 else c for k, c in enumerate(drawn)]
    specs = [(shape, colour, classes[c], r) for (shape, colour, r), c in zip(looks, labels)]
    motions = []
    for (_, _, kind, r), (first, last) in zip(specs, spans):
        local = replace(cfg, num_frames=last - first + 1)
        for _ in range(20):  # redraw (deterministically) until the tube shows its motion
            motion = _Motion(kind, rng, local, r, keep_inside=True)
            if _shows_its_motion(motion, local.num_frames):
                break
        motions.append(motion)
    frames, boxes, masks, _ = _render(rng, cfg, specs, [True] * n_actors, motions, spans)
    objects = [ObjectTrack(shape, colour, kind, describe("", colour, shape, kind, m.vx, m.vy), boxes[k], masks[k])
               for k, ((shape, colour, kind, _), m) in enumerate(zip(specs, motions))]
    return TubeVideo(f"tubes{seed:03d}_{index:05d}", frames, objects, cfg.fps, video_label, tuple(classes),
                     [(first + 1, last + 1) for first, last in spans])
