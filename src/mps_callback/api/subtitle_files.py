"""Render subtitle lines as WebVTT, SubRip or plain text."""

from __future__ import annotations

from dataclasses import dataclass

#: A line without an end shows until the next one starts, or this long.
DEFAULT_DURATION = 2.0


@dataclass(frozen=True, slots=True)
class Line:
    start: float
    end: float | None
    text: str


def render(lines: list[Line], fmt: str) -> str:
    timed = _with_ends(sorted(lines, key=lambda line: line.start))
    if fmt == "txt":
        return "".join(f"{text}\n" for _, _, text in timed)
    separator = "." if fmt == "vtt" else ","
    cues = [
        f"{index}\n{_clock(start, separator)} --> {_clock(end, separator)}\n{text}\n"
        for index, (start, end, text) in enumerate(timed, start=1)
    ]
    header = "WEBVTT\n\n" if fmt == "vtt" else ""
    return header + "\n".join(cues)


def _with_ends(lines: list[Line]) -> list[tuple[float, float, str]]:
    timed = []
    for index, line in enumerate(lines):
        following = lines[index + 1].start if index + 1 < len(lines) else None
        end = line.end if line.end is not None and line.end > line.start else None
        if end is None:
            end = following if following is not None and following > line.start else line.start + DEFAULT_DURATION
        timed.append((max(line.start, 0.0), max(end, 0.0), _cue_text(line.text)))
    return timed


def _cue_text(text: str) -> str:
    """One cue's text: no blank lines (they end a cue) and no "-->" (it starts one)."""
    lines = [part.strip() for part in text.replace("\r", "\n").split("\n") if part.strip()]
    return "\n".join(lines).replace("-->", "->") or " "


def _clock(seconds: float, separator: str) -> str:
    millis = int(round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"
