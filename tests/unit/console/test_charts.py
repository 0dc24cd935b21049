from datetime import date, timedelta

import pytest

from ssbg.console.charts import HEIGHT, daily_bars

DAYS = [date(2026, 11, 14) + timedelta(days=n) for n in range(14)]


def test_bars_are_scaled_to_a_round_top_and_stand_on_the_baseline() -> None:
    backups = [0] * 13 + [7]
    restores = [3] + [0] * 13

    chart = daily_bars(DAYS, [("backups", backups), ("restores", restores)])

    assert [tick.value for tick in chart.ticks] == [0, 5, 10]
    tallest = max(chart.bars, key=lambda bar: bar.height)
    assert (tallest.value, tallest.title) == (7, "2026-11-27: 7 backups")
    assert all(bar.y + bar.height == pytest.approx(chart.baseline) for bar in chart.bars)
    assert tallest.height == pytest.approx((chart.baseline - 10) * 0.7)
    assert len(chart.bars) == 28
    assert chart.labels[-1].text == "27.11"  # today is always labelled
    assert 0 < min(bar.y for bar in chart.bars) < HEIGHT


def test_an_empty_fortnight_still_has_a_scale() -> None:
    chart = daily_bars(DAYS, [("backups", [0] * 14)])

    assert [tick.value for tick in chart.ticks] == [0, 1]
    assert {bar.height for bar in chart.bars} == {0}


def test_a_series_must_have_a_count_per_day() -> None:
    with pytest.raises(ValueError, match="one count per day"):
        daily_bars(DAYS, [("backups", [1, 2])])
