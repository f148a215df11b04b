"""bfm_gym.utils.plots.save_figure: a label wider than its axes is kept whole in the image."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from bfm_gym.utils.plots import pyplot, save_figure


def test_a_long_label_widens_the_image_instead_of_being_cut(tmp_path: Path) -> None:
    plt = pyplot()
    sizes = {}
    for name, label in (("short", "x"), ("long", "IQM of return / zero-shot level (= OpTI-BFM oracle) " * 2)):
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [0, 1])
        ax.set_xlabel(label)
        save_figure(fig, tmp_path / f"{name}.png")
        with Image.open(tmp_path / f"{name}.png") as img:
            sizes[name] = img.size
    # 2 in at 110 dpi is 220 px: the short one fits in it, the long label's text needs far more
    assert sizes["short"][0] <= 230 and sizes["long"][0] > 2 * sizes["short"][0]
    assert not list(tmp_path.glob("*.tmp*"))  # written through a temporary file, nothing left over
