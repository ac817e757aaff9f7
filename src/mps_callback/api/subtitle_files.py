"""Render subtitle lines as WebVTT, SubRip or plain text that every parser reads back as the same cues.

Cue text comes from MPS (speech recognition, OCR, translation), so it can hold anything: a
line that looks like a timing line, blank lines, ``&<>``, U+2028/U+2029, control
characters. Each format gets what it needs for the text to stay one cue with its text:

- every line break Python knows (``str.splitlines``: CR, LF, VT, FF, FS/GS/RS, NEL,
  U+2028, U+2029) becomes one LF, and blank lines go (a blank line ends a cue);
- WebVTT: ``&``, ``<``, ``>`` are escaped as character references, which also ends any
  ``-->`` (a line holding it is a timing line);
- SubRip has no escaping: a run of ``-`` and spaces before ``>`` (what parsers take for the
  arrow of a timing line, ``-->``, ``- >``, ``--- >``) becomes ``->``;
- NUL goes (WebVTT parsers turn it into U+FFFD, PostgreSQL never stores it anyway).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

#: A line without an end shows until the next one starts, or this long.
DEFAULT_DURATION = 2.0
#: The latest time a cue can show at: 99:59:59.999, the largest SubRip clock (two-digit hours).
#: Later ends are clamped to it; lines starting later are left out (no player reaches them).
LATEST = 99 * 3600 + 59 * 60 + 59.999

#: What parsers of SubRip take for a timing line's arrow.
SRT_ARROW = re.compile(r"-[ \-]+>")
VTT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


@dataclass(frozen=True, slots=True)
class Line:
    start: float
    end: float | None
    text: str


@dataclass(frozen=True, slots=True)
class Format:
    """One file format: its header, the separator of its clock's milliseconds, how text is made safe."""

    header: str
    separator: str
    escape: Callable[[str], str]


FORMATS = {
    "vtt": Format("WEBVTT\n\n", ".", lambda text: text.translate(VTT_ESCAPES)),
    "srt": Format("", ",", lambda text: SRT_ARROW.sub("->", text)),
}


def render(lines: list[Line], fmt: str) -> str:
    timed = _with_ends(sorted((line for line in lines if _showable(line.start)), key=lambda line: line.start))
    if fmt == "txt":
        return "".join(f"{text}\n" for _, _, text in timed)
    spec = FORMATS[fmt]
    cues = [
        f"{index}\n{_clock(start, spec.separator)} --> {_clock(end, spec.separator)}\n{spec.escape(text)}\n"
        for index, (start, end, text) in enumerate(timed, start=1)
    ]
    return spec.header + "\n".join(cues)


def _showable(start: float) -> bool:
    return math.isfinite(start) and start <= LATEST


def _with_ends(lines: list[Line]) -> list[tuple[float, float, str]]:
    timed = []
    for index, line in enumerate(lines):
        following = lines[index + 1].start if index + 1 < len(lines) else None
        end = line.end if line.end is not None and not math.isnan(line.end) and line.end > line.start else None
        if end is None:
            end = following if following is not None and following > line.start else line.start + DEFAULT_DURATION
        start = max(line.start, 0.0)
        timed.append((start, min(max(end, start), LATEST), cue_text(line.text)))
    return timed


def cue_text(text: str) -> str:
    """One cue's lines: every kind of line break one LF, no blank lines, no NUL; never empty."""
    lines = [part.strip() for part in text.replace("\x00", "").splitlines()]
    return "\n".join(line for line in lines if line) or " "


def _clock(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"
