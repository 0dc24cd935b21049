from ssbg.console.rendering import ENVIRONMENT, _size


def test_templates_escape_what_they_show() -> None:
    html = ENVIRONMENT.from_string("<p>{{ value }}</p>").render(value="<script>x()</script>")

    assert html == "<p>&lt;script&gt;x()&lt;/script&gt;</p>"


def test_sizes_read_as_people_read_them() -> None:
    assert [_size(n) for n in (None, 0, 1023, 1024, 5 * 1024**3)] == [
        "—",
        "0 B",
        "1023 B",
        "1.0 KiB",
        "5.0 GiB",
    ]
