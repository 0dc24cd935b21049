"""A small bar chart of counts per day, as geometry for a server-rendered SVG (no script).

Grouped bars, one group per day and one bar per series; a y axis with a few round ticks. The
template draws it (``templates/_chart.html``) with classes only: the console's CSP allows no
inline styles.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

WIDTH = 640
HEIGHT = 220
LEFT = 36  # room for the tick labels
RIGHT = 8
TOP = 10
BOTTOM = 28  # room for the day labels
GROUP_GAP = 0.25  # share of a day's slot left empty


@dataclass(frozen=True, slots=True)
class Bar:
    series: int
    x: float
    y: float
    width: float
    height: float
    value: int
    title: str


@dataclass(frozen=True, slots=True)
class Tick:
    y: float
    value: int


@dataclass(frozen=True, slots=True)
class DayLabel:
    x: float
    text: str


@dataclass(frozen=True, slots=True)
class BarChart:
    width: int
    height: int
    left: int
    baseline: float
    bars: list[Bar]
    ticks: list[Tick]
    labels: list[DayLabel]


def _top_of_scale(largest: int) -> int:
    """The smallest of 1, 2, 5 times 10^k at least ``largest`` (at least 1)."""
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= largest:
                return step * scale
        scale *= 10


def daily_bars(days: Sequence[date], series: Sequence[tuple[str, Sequence[int]]]) -> BarChart:
    """``series``: (noun, count per day) pairs, each as long as ``days``."""
    for _, counts in series:
        if len(counts) != len(days):
            raise ValueError("every series needs one count per day")
    top = _top_of_scale(max((max(counts, default=0) for _, counts in series), default=0))
    plot_height = HEIGHT - TOP - BOTTOM
    baseline = float(HEIGHT - BOTTOM)
    slot = (WIDTH - LEFT - RIGHT) / max(len(days), 1)
    bar_width = slot * (1 - GROUP_GAP) / max(len(series), 1)
    bars: list[Bar] = []
    labels: list[DayLabel] = []
    for index, day in enumerate(days):
        start = LEFT + index * slot + slot * GROUP_GAP / 2
        for number, (noun, counts) in enumerate(series):
            value = counts[index]
            height = plot_height * value / top
            bars.append(
                Bar(
                    series=number,
                    x=round(start + number * bar_width, 2),
                    y=round(baseline - height, 2),
                    width=round(bar_width, 2),
                    height=round(height, 2),
                    value=value,
                    title=f"{day.isoformat()}: {value} {noun}",
                )
            )
        # every other day labelled, so fourteen labels stay legible on a phone
        if (len(days) - 1 - index) % 2 == 0:
            labels.append(
                DayLabel(x=round(LEFT + (index + 0.5) * slot, 2), text=day.strftime("%d.%m"))
            )
    ticks = [
        Tick(y=round(baseline - plot_height * value / top, 2), value=value)
        for value in sorted({0, top // 2, top})
    ]
    return BarChart(WIDTH, HEIGHT, LEFT, baseline, bars, ticks, labels)
