"""Output profiles: which images one paid cutout becomes, declared once and validated up front.

A profile is a list of outputs, each derived from the gateway's one result (the master), so adding
or changing an output never costs another gateway call. The file is validated at synth (infra) and
again at cold start with the same code, so a mistake names its profile, output and field before
anything is deployed or paid. No Pillow here: the submit and webhook paths import this module.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

PROFILE_METADATA_KEY = "cutouts-profile"  # S3 user metadata: x-amz-meta-cutouts-profile
DEFAULT_PROFILE = "default"
CUTOUT_OUTPUT = "cutout"  # the png output of this name keeps today's key, <output><relative>.png

MAX_CANVAS_SIDE = 10_000  # a canvas side above this is a typo, and its buffer alone would be 400 MB
MAX_OUTPUT_SIDE = 16_384  # JPEG and WebP cannot encode a longer side (WebP: 16383)
MAX_OUTPUTS = 12  # each output is rendering time on every image
SUBJECT_ALPHA_THRESHOLD = 8  # crop "subject": pixels with alpha above this belong to the subject
DEFAULT_QUALITY = 90
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")  # safe in S3 keys and metadata
_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")
_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")

# Why a job's outputs could not be chosen: merged into reports.ADVICE by the pipeline.
ADVICE: dict[str, str] = {
    "unknown-profile": "The upload's x-amz-meta-cutouts-profile names a profile the stack does not declare: "
    "upload it again with a declared name (see profiles.json), or without that metadata.",
}


class ProfileError(ValueError):
    """A profiles file that cannot be used; the message says where and how to fix it."""

    def __init__(self, message: str, profile: str = "", output: str | None = None, field: str | None = None) -> None:
        where = []
        if profile:
            where.append(f'profile "{profile}"')
        if output is not None:
            where.append(f'output "{output}"')
        if field is not None:
            where.append(f'field "{field}"')
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.profile = profile
        self.output = output
        self.field = field


class UnknownProfile(LookupError):
    """An upload asked (by metadata) for a profile that is not declared."""

    def __init__(self, name: str, declared: list[str]) -> None:
        hint = _did_you_mean(name, declared)
        super().__init__(f'profile "{name}" is not declared; declared: {", ".join(sorted(declared))}{hint}')
        self.name = name
        self.reason = "unknown-profile"


class ImageFormat(StrEnum):
    PNG = "png"
    JPEG = "jpeg"
    WEBP = "webp"
    AVIF = "avif"  # Pillow 13 reads and writes it (libavif in its wheels)

    @property
    def extension(self) -> str:
        return "jpg" if self is ImageFormat.JPEG else self.value

    @property
    def content_type(self) -> str:
        return f"image/{self.value}"

    @property
    def lossy(self) -> bool:
        return self is not ImageFormat.PNG

    @property
    def has_alpha(self) -> bool:
        return self is not ImageFormat.JPEG


class Position(StrEnum):
    CENTER = "center"
    BOTTOM = "bottom"  # products stand on the canvas's bottom edge (after the margin)


@dataclass(frozen=True)
class Margin:
    """Space around the subject: pixels, or percent of the subject's larger side ("8%")."""

    pixels: int = 0
    percent: float = 0.0

    def for_subject(self, width: int, height: int) -> int:
        return self.pixels + round(max(width, height) * self.percent / 100)

    def to_json(self) -> int | str:
        return f"{self.percent!r}%" if self.percent else self.pixels


@dataclass(frozen=True)
class OutputSpec:
    name: str
    format: ImageFormat = ImageFormat.PNG
    background: tuple[int, int, int] | None = None  # None = transparent
    mask: bool = False
    crop: str = "none"  # "none" | "subject"
    margin: Margin = field(default_factory=Margin)
    canvas: tuple[int, int] | None = None
    position: Position = Position.CENTER
    max_size: int | None = None
    quality: int | None = None  # lossy formats only; None = DEFAULT_QUALITY

    def key_suffix(self) -> str:
        if self.name == CUTOUT_OUTPUT and self.format is ImageFormat.PNG:
            return ".png"
        return f".{self.name}.{self.format.extension}"

    def content_type(self) -> str:
        return self.format.content_type

    def is_master_copy(self) -> bool:
        """True when the output is the master's bytes as they are: no decode, no encode needed."""
        return self == OutputSpec(self.name)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "format": self.format.value}
        if self.background is not None:
            doc["background"] = "#{:02X}{:02X}{:02X}".format(*self.background)
        if self.mask:
            doc["mask"] = True
        if self.crop != "none":
            doc["crop"] = self.crop
        if self.margin != Margin():
            doc["margin"] = self.margin.to_json()
        if self.canvas is not None:
            doc["canvas"] = list(self.canvas)
            doc["position"] = self.position.value
        if self.max_size is not None:
            doc["maxSize"] = self.max_size
        if self.quality is not None:
            doc["quality"] = self.quality
        return doc


@dataclass(frozen=True)
class Profile:
    name: str
    match: str | None
    outputs: tuple[OutputSpec, ...]

    def is_plain_cutout(self) -> bool:
        """Today's behaviour: one png cutout that is the master itself; nothing to render."""
        return len(self.outputs) == 1 and self.outputs[0].is_master_copy() and self.outputs[0].name == CUTOUT_OUTPUT


DEFAULT = Profile(DEFAULT_PROFILE, None, (OutputSpec(CUTOUT_OUTPUT),))


@dataclass(frozen=True)
class Profiles:
    profiles: Mapping[str, Profile]

    @classmethod
    def parse(cls, data: object) -> Profiles:
        """Validate a decoded profiles document; raise ProfileError at the first mistake."""
        if not isinstance(data, dict):
            raise ProfileError(f'the document must be an object {{"profiles": {{...}}}}, not {_kind(data)}')
        _reject_unknown(data, {"profiles"}, "")
        declared = data.get("profiles")
        if not isinstance(declared, dict) or not declared:
            raise ProfileError('"profiles" must be an object with at least one profile', field="profiles")
        parsed: dict[str, Profile] = {}
        for name, body in declared.items():
            parsed[name] = _parse_profile(name, body)
        matches: dict[str, str] = {}
        for profile in parsed.values():
            if profile.match is None:
                continue
            if profile.match in matches:
                raise ProfileError(
                    f'"{profile.match}" is also the match of profile "{matches[profile.match]}": '
                    "each sub-prefix chooses one profile",
                    profile.name,
                    field="match",
                )
            matches[profile.match] = profile.name
        parsed.setdefault(DEFAULT_PROFILE, DEFAULT)
        return cls(MappingProxyType(parsed))

    @classmethod
    def load(cls, path: Path | str) -> Profiles:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(f"cannot read the profiles file {path}: {exc.strerror or exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProfileError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
        return cls.parse(data)

    @classmethod
    def default(cls) -> Profiles:
        return cls(MappingProxyType({DEFAULT_PROFILE: DEFAULT}))

    def to_json(self) -> str:
        doc = {
            "profiles": {
                name: {
                    **({"match": p.match} if p.match is not None else {}),
                    "outputs": [o.to_json() for o in p.outputs],
                }
                for name, p in sorted(self.profiles.items())
            }
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    def choose(self, relative_key: str, requested: str | None = None) -> Profile:
        """The metadata's name wins; else the longest ``match`` the key starts with; else "default"."""
        if requested is not None and requested.strip():
            name = requested.strip()
            if name not in self.profiles:
                raise UnknownProfile(name, list(self.profiles))
            return self.profiles[name]
        matching = [p for p in self.profiles.values() if p.match is not None and relative_key.startswith(p.match)]
        return max(matching, key=lambda p: len(p.match or ""), default=self.profiles[DEFAULT_PROFILE])

    def needs_rendering(self) -> bool:
        """False when every profile is today's one png cutout (the stack needs no rendering function)."""
        return not all(p.is_plain_cutout() for p in self.profiles.values())


def output_key(output_prefix: str, relative_key: str, spec: OutputSpec) -> str:
    return f"{output_prefix}{relative_key}{spec.key_suffix()}"


# ---- validation ---------------------------------------------------------------------------------

_PROFILE_FIELDS = {"match", "outputs"}
_OUTPUT_FIELDS = {"name", "format", "background", "mask", "crop", "margin", "canvas", "position", "maxSize", "quality"}


def _parse_profile(name: str, body: object) -> Profile:
    if not _NAME.match(name):
        raise ProfileError(
            "a profile name is 1-40 characters of a-z, 0-9 and '-' (it travels in S3 metadata)", name, field="name"
        )
    if not isinstance(body, dict):
        raise ProfileError(f'must be an object {{"outputs": [...]}}, not {_kind(body)}', name)
    _reject_unknown(body, _PROFILE_FIELDS, name)
    match = body.get("match")
    if match is not None:
        if name == DEFAULT_PROFILE:
            raise ProfileError(
                '"default" takes every key no other profile matches: it has no match', name, None, "match"
            )
        if not isinstance(match, str) or not match.endswith("/") or match.startswith("/") or "//" in match:
            raise ProfileError(
                f'must be a sub-prefix of the input prefix ending in "/", like "shop/"; got {match!r}',
                name,
                None,
                "match",
            )
    outputs = body.get("outputs")
    if not isinstance(outputs, list) or not outputs:
        raise ProfileError("must be a list of at least one output", name, None, "outputs")
    if len(outputs) > MAX_OUTPUTS:
        raise ProfileError(f"at most {MAX_OUTPUTS} outputs (each one is rendering time)", name, None, "outputs")
    specs: list[OutputSpec] = []
    seen: set[str] = set()
    for index, out in enumerate(outputs):
        spec = _parse_output(name, index, out)
        if spec.name in seen:
            raise ProfileError("two outputs have this name; their keys would collide", name, spec.name, "name")
        seen.add(spec.name)
        specs.append(spec)
    return Profile(name, match, tuple(specs))


def _parse_output(profile: str, index: int, out: object) -> OutputSpec:
    if not isinstance(out, dict):
        raise ProfileError(f"output #{index + 1} must be an object, not {_kind(out)}", profile)
    name = out.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ProfileError(
            f"output #{index + 1} needs a name of 1-40 characters of a-z, 0-9 and '-' (it is part of the key); "
            f"got {name!r}",
            profile,
            field="name",
        )

    def fail(field_name: str, message: str) -> ProfileError:
        return ProfileError(message, profile, name, field_name)

    _reject_unknown(out, _OUTPUT_FIELDS, profile, name)
    raw_format = out.get("format", "png")
    try:
        fmt = ImageFormat(raw_format)
    except ValueError:
        choices = " | ".join(f.value for f in ImageFormat)
        raise fail("format", f"{raw_format!r} is not one of {choices}") from None

    mask = out.get("mask", False)
    if not isinstance(mask, bool):
        raise fail("mask", f"must be true or false, not {mask!r}")
    if mask and fmt is not ImageFormat.PNG:
        raise fail("mask", "a mask is a single-channel PNG: use format png")

    raw_background = out.get("background")
    background: tuple[int, int, int] | None
    if raw_background is None or raw_background == "transparent":
        background = (255, 255, 255) if fmt is ImageFormat.JPEG and raw_background is None else None
        if fmt is ImageFormat.JPEG and raw_background == "transparent":
            raise fail("background", 'jpeg has no transparency: give a colour like "#FFFFFF", or use png/webp')
    elif isinstance(raw_background, str) and _COLOUR.match(raw_background):
        background = (int(raw_background[1:3], 16), int(raw_background[3:5], 16), int(raw_background[5:7], 16))
    else:
        raise fail("background", f'must be "transparent" or a colour "#RRGGBB", not {raw_background!r}')
    if mask and raw_background is not None:
        raise fail("background", "a mask has no background: remove the field or the mask")

    crop = out.get("crop", "none")
    if crop not in ("none", "subject"):
        raise fail("crop", f'must be "none" or "subject", not {crop!r}')

    margin = _parse_margin(out.get("margin", 0), fail)

    raw_canvas = out.get("canvas")
    canvas: tuple[int, int] | None = None
    if raw_canvas is not None:
        if (
            not isinstance(raw_canvas, list)
            or len(raw_canvas) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in raw_canvas)
        ):
            raise fail("canvas", f"must be [width, height] in pixels, not {raw_canvas!r}")
        if not all(1 <= v <= MAX_CANVAS_SIDE for v in raw_canvas):
            raise fail("canvas", f"each side must be 1-{MAX_CANVAS_SIDE} pixels, not {raw_canvas!r}")
        canvas = (raw_canvas[0], raw_canvas[1])

    raw_position = out.get("position")
    if raw_position is not None and canvas is None:
        raise fail("position", "places the subject on a canvas: add canvas [width, height] or remove position")
    try:
        position = Position(raw_position or "center")
    except ValueError:
        raise fail("position", f'must be "center" or "bottom", not {raw_position!r}') from None

    max_size = out.get("maxSize")
    if max_size is not None and (
        not isinstance(max_size, int) or isinstance(max_size, bool) or not 1 <= max_size <= MAX_OUTPUT_SIDE
    ):
        raise fail("maxSize", f"must be a whole number of pixels 1-{MAX_OUTPUT_SIDE} (the long edge), not {max_size!r}")

    quality = out.get("quality")
    if quality is not None:
        if not fmt.lossy:
            raise fail("quality", f"applies to lossy formats (jpeg, webp, avif), not {fmt.value}")
        if not isinstance(quality, int) or isinstance(quality, bool) or not 1 <= quality <= 100:
            raise fail("quality", f"must be a whole number 1-100, not {quality!r}")

    return OutputSpec(
        name=name,
        format=fmt,
        background=background,
        mask=mask,
        crop=crop,
        margin=margin,
        canvas=canvas,
        position=position,
        max_size=max_size,
        quality=quality,
    )


def _parse_margin(raw: object, fail: Any) -> Margin:
    if isinstance(raw, int) and not isinstance(raw, bool):
        if not 0 <= raw <= MAX_CANVAS_SIDE:
            raise fail("margin", f"must be 0-{MAX_CANVAS_SIDE} pixels, not {raw}")
        return Margin(pixels=raw)
    if isinstance(raw, str) and (found := _PERCENT.match(raw)):
        percent = float(found.group(1))
        if percent > 100:
            raise fail("margin", f"a percentage of the subject's larger side must be 0-100%, not {raw}")
        return Margin(percent=percent)
    raise fail("margin", f'must be pixels (24) or a percentage of the subject\'s larger side ("8%"), not {raw!r}')


def _reject_unknown(doc: dict[str, Any], known: set[str], profile: str, output: str | None = None) -> None:
    for key in doc:
        if key not in known:
            raise ProfileError(
                f"unknown field{_did_you_mean(key, sorted(known))}; known: {', '.join(sorted(known))}",
                profile,
                output,
                key,
            )


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    if not close:
        lowered = {c.lower(): c for c in choices}
        close = [lowered[word.lower()]] if word.lower() in lowered else []
    return f' (did you mean "{close[0]}"?)' if close else ""


def _kind(value: object) -> str:
    return type(value).__name__ if value is not None else "null"
