from mtlm.plots import new_figure, save_figure


def test_save_figure_writes_a_png_and_leaves_no_staging_file(tmp_path):
    figure = new_figure()
    figure.add_subplot().plot([0, 1, 2], [1, 0, 1])
    path = save_figure(figure, tmp_path / "plots" / "line.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 1000
    assert [p.name for p in path.parent.iterdir()] == ["line.png"]
