"""A run's timeline drawn: each subject's states over time as text, a Mermaid gantt, or SVG.

The model is `lifecycle.outcome.Timeline` (read from a journal in one pass); this module only
renders it. The same contract as `lifecycle.diagrams`: the same timeline gives the same text,
every name is escaped for its format whatever it holds, and Mermaid text stays within what
Mermaid draws by default (`lifecycle.diagrams.MERMAID_MAX_TEXT_SIZE`: subjects that do not
fit are left out, and a last section says how many).

* `text_lines`: one block per subject, one line per state: when it was entered (seconds since
  the run's start), the state, how long it lasted, the trigger and the cause. The lines hold
  the journal's text as it is: print them escaped (the command line does).
* `mermaid`: a Mermaid ``gantt``, one section per subject, one bar per state (millisecond
  resolution: Mermaid's dates are JavaScript dates; each bar's label says its exact duration).
* `svg`: an SVG drawn here, with no external program: one row per subject, one bar per state,
  coloured as the dependency diagrams colour task states (`lifecycle.diagrams.STATE_COLOURS`).
  UTF-8 XML; no size limit.

Pure functions; thread-safe.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from xml.sax.saxutils import escape, quoteattr

from lifecycle.diagrams import (
    ELLIPSIS,
    MERMAID_LABEL_LIMIT,
    MERMAID_MAX_TEXT_SIZE,
    STATE_COLOURS,
    UNKNOWN_COLOUR,
    DiagramError,
    mermaid_text,
    printable,
    shorten,
)
from lifecycle.outcome import Span, Timeline
from lifecycle.spec import TaskState

__all__ = ["FORMATS", "mermaid", "render", "svg", "text_lines"]

#: The output formats of `render`.
FORMATS = ("text", "mermaid", "svg")


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.3f} ms"


def _lasted(span: Span) -> str:
    return "" if span.end is None else _ms(span.end - span.start)


def text_lines(timeline: Timeline) -> list[str]:
    """The timeline as lines of text (no newlines; journal text unescaped: see the module)."""
    lines = []
    for subject in timeline.subjects:
        lines.append(f"{subject.kind} {subject.name}")
        width = max((len(s.state) for s in subject.spans), default=0)
        for span in subject.spans:
            at = f"{timeline.seconds(span.start):+.6f} s"
            lasted = _lasted(span) if span.end is not None else "(last)"
            why = f"  {span.cause}" if span.cause else ""
            lines.append(f"  {at}  {span.state:<{width}}  {lasted:>12}  by {span.trigger}{why}")
        if subject.dropped:
            lines.append(f"  ... {subject.dropped} more transitions, not kept")
    return lines


# -- Mermaid ------------------------------------------------------------------------------------

# Words the gantt lexer takes as statements at the start of a line (case-insensitive), before
# a task's text: a label starting with one gets its first character written as an entity.
_GANTT_KEYWORDS = re.compile(
    r"(?:gantt|dateformat|inclusiveenddates|topaxis|axisformat|tickinterval|includes|excludes|"
    r"todaymarker|weekday|weekend|title|accdescr|acctitle|section|href|call|click)",
    re.IGNORECASE,
)
#: The Mermaid tag of the bar of each task state, where one fits.
_GANTT_TAGS = {
    TaskState.RUNNING.value: "active",
    TaskState.STOPPED.value: "done",
    TaskState.SKIPPED.value: "done",
    TaskState.FAILED.value: "crit",
}


def _gantt_label(text: str) -> str:
    shown = mermaid_text(text, " ")
    if _GANTT_KEYWORDS.match(shown):
        shown = f"#{ord(shown[0])};{shown[1:]}"
    return shown


def mermaid(timeline: Timeline) -> str:
    """The timeline as a Mermaid ``gantt`` (ends with a newline), at most
    `MERMAID_MAX_TEXT_SIZE` characters: the first subjects that fit, then a section saying
    how many are not drawn."""
    names = shorten((s.name for s in timeline.subjects), MERMAID_LABEL_LIMIT)
    head = [
        "gantt",
        f"    title {_gantt_label(_title(timeline))}",
        "    dateFormat x",
        "    axisFormat %M:%S.%L",
    ]
    sections = []
    for index, subject in enumerate(timeline.subjects):
        out = [f"    section {_gantt_label(f'{subject.kind} {names[subject.name]}')}"]
        for number, span in enumerate(subject.spans):
            start = (span.start - timeline.origin) // 1_000_000
            end = start if span.end is None else (span.end - timeline.origin) // 1_000_000
            tag = _GANTT_TAGS.get(span.state)
            milestone = span.end is None
            tags = ", ".join([*([tag] if tag else []), *(["milestone"] if milestone else [])])
            label = _gantt_label(f"{span.state} {_lasted(span)}".strip())
            data = f"{tags + ', ' if tags else ''}s{index}_{number}, {start}, {end}"
            out.append(f"    {label} :{data}")
        sections.append("\n".join(out))

    def drawing(n: int) -> str:
        out = [*head, *sections[:n]]
        if n < len(sections):
            missing = len(sections) - n
            note = (
                f"{ELLIPSIS} {missing:,} more subject{'' if missing == 1 else 's'} not drawn: "
                f"Mermaid draws at most {MERMAID_MAX_TEXT_SIZE:,} characters; the text and svg "
                "formats show everything"
            )
            out.append(f"    section {_gantt_label(note)}")
        return "\n".join(out) + "\n"

    return _fit(drawing, len(sections))


def _fit(drawing: Callable[[int], str], items: int) -> str:
    """The drawing of the most items within Mermaid's size limit (text grows with them)."""
    if len(whole := drawing(items)) <= MERMAID_MAX_TEXT_SIZE:
        return whole
    fits, too_many = 0, items
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        if len(drawing(middle)) <= MERMAID_MAX_TEXT_SIZE:
            fits = middle
        else:
            too_many = middle
    return drawing(fits)


def _title(timeline: Timeline) -> str:
    count = len(timeline.subjects)
    seconds = timeline.seconds(timeline.end)
    return f"timeline: {count} subject{'' if count == 1 else 's'}, {seconds:.3f} s"


# -- SVG ----------------------------------------------------------------------------------------

_ROW = 22  # px per subject
_LABEL = 260  # px for the names column
_PLOT = 720  # px for the time axis
_TOP = 44  # px above the first row (title and axis)


def _colour(state: str) -> str:
    try:
        return STATE_COLOURS[TaskState(state)]
    except ValueError:
        return UNKNOWN_COLOUR


def _xml(text: str) -> str:
    """Text as XML character data: printable (no control character, no unpaired surrogate,
    which XML cannot hold) and escaped."""
    return escape(printable(text).replace("\n", "\\n"))


def svg(timeline: Timeline) -> bytes:
    """The timeline as an SVG document (UTF-8 bytes): a row per subject, a bar per state
    (hover a bar for its state, start, duration and cause), and a time axis in seconds."""
    total = max(timeline.end - timeline.origin, 1)
    height = _TOP + _ROW * len(timeline.subjects) + 10
    width = _LABEL + _PLOT + 20

    def x(mono: int) -> float:
        return round(_LABEL + _PLOT * max(mono - timeline.origin, 0) / total, 2)

    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" '
        'font-size="12">',
        f'<text x="10" y="16" font-size="14">{_xml(_title(timeline))}</text>',
    ]
    for tick in range(5):
        at = timeline.origin + total * tick // 4
        out.append(
            f'<line x1="{x(at)}" y1="{_TOP - 14}" x2="{x(at)}" y2="{height - 10}" '
            'stroke="#dddddd"/>'
        )
        out.append(
            f'<text x="{x(at)}" y="{_TOP - 18}" text-anchor="middle" fill="#666666">'
            f"{timeline.seconds(at):.3f} s</text>"
        )
    for row, subject in enumerate(timeline.subjects):
        y = _TOP + row * _ROW
        label = f"{subject.kind} {subject.name}"
        shown = label if len(label) <= 40 else label[:39] + ELLIPSIS
        out.append(f'<text x="10" y="{y + 15}">{_xml(shown)}<title>{_xml(label)}</title></text>')
        for span in subject.spans:
            start = x(span.start)
            end = x(span.end if span.end is not None else timeline.end)
            tip = f"{span.state} at {timeline.seconds(span.start):.6f} s"
            if span.end is not None:
                tip += f" for {_lasted(span)}"
            if span.cause:
                tip += f": {span.cause}"
            out.append(
                f'<rect x="{start}" y="{y + 3}" width="{max(end - start, 1.0):.2f}" '
                f'height="{_ROW - 6}" fill={quoteattr(_colour(span.state))} stroke="#666666" '
                f'stroke-width="0.5"><title>{_xml(tip)}</title></rect>'
            )
    out.append("</svg>")
    return ("\n".join(out) + "\n").encode("utf-8")


def render(timeline: Timeline, format: str) -> str | bytes:
    """``timeline`` drawn in ``format``: ``"mermaid"`` (text) or ``"svg"`` (bytes); the text
    format is `text_lines`, to be printed escaped.

    Raises `DiagramError` for another format.
    """
    if format == "mermaid":
        return mermaid(timeline)
    if format == "svg":
        return svg(timeline)
    raise DiagramError(f"cannot draw a timeline as {format!r}; expected mermaid or svg")
