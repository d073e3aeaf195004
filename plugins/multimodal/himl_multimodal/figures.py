"""The phrase-grounding figure: the image, the similarity map over it, and the map alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def plot_phrase_grounding(image: Image.Image, similarity_map: np.ndarray, phrase: str, output: Path) -> Path:
    """Write the three-panel figure to ``output`` (format from its suffix) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(15, 5))
    try:
        pixels = np.asarray(image)
        axes[0].imshow(pixels, cmap="gray")
        axes[0].set_title("image")
        axes[1].imshow(pixels, cmap="gray")
        overlay = axes[1].imshow(similarity_map, cmap="jet", alpha=0.5, vmin=-1.0, vmax=1.0)
        axes[1].set_title(f"similarity to {phrase!r}")
        axes[2].imshow(similarity_map, cmap="jet", vmin=-1.0, vmax=1.0)
        axes[2].set_title("similarity map")
        for axis in axes:
            axis.axis("off")
        figure.colorbar(overlay, ax=axes.tolist(), fraction=0.02)
        figure.savefig(output, bbox_inches="tight", dpi=100)
    finally:
        plt.close(figure)
    return output
