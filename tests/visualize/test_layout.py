"""Figure layout: every text lies inside the canvas and no two texts overlap, with long run names."""

import itertools

import numpy as np
import pytest

from keras_equivariant.visualize import (corruption, perturbation_tolerance, plot_corruption_heatmap,
                                         plot_saliency_comparison, plot_tolerance_distribution,
                                         plot_tolerance_example, saliency, tolerance)

LONG_NAMES = ["ParallelRotScaleGCNN-d4-equivariant-cifar10-s0",
              "CascadedGCNN-d10-paper-cifar10-s1", "weighted_parallel_gcnn_depth10_seed2"]


@pytest.fixture
def figures(monkeypatch):
    """Records every figure the plot functions save."""
    saved = []
    for module in (tolerance, corruption, saliency):
        original = module.save_figure

        def recording(figure, path, original=original, **kwargs):
            saved.append(figure)
            return original(figure, path, **kwargs)

        monkeypatch.setattr(module, "save_figure", recording)
    return saved


def layout_problems(figure):
    """Texts that stick out of the canvas, and pairs of texts that overlap (in pixels)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = [(text.get_text(), text.get_window_extent(renderer)) for text in _drawn_texts(figure)]
    canvas_box = figure.bbox
    problems = [f"outside the canvas: {label!r}" for label, box in boxes
                if box.x0 < canvas_box.x0 - 1 or box.y0 < canvas_box.y0 - 1
                or box.x1 > canvas_box.x1 + 1 or box.y1 > canvas_box.y1 + 1]
    for (label, box), (other_label, other_box) in itertools.combinations(boxes, 2):
        if _overlap_area(box, other_box) > 4:
            problems.append(f"overlapping: {label!r} and {other_label!r}")
    return problems


def _drawn_texts(figure):
    """Suptitle, axes titles and labels, tick labels in view, annotations and legend entries."""
    texts = list(figure.texts)
    for axes in figure.axes:
        texts += [axes.title, axes._left_title, axes._right_title, axes.xaxis.label,
                  axes.yaxis.label, *axes.texts]
        for axis, interval in ((axes.xaxis, axes.get_xlim()), (axes.yaxis, axes.get_ylim())):
            low, high = sorted(interval)
            texts += [tick.label1 for tick in axis.get_major_ticks()
                      if low <= tick.get_loc() <= high and tick.label1.get_visible()]
        if axes.get_legend() is not None:
            texts += axes.get_legend().get_texts()
    return [text for text in texts if text.get_visible() and text.get_text().strip()]


def _overlap_area(box, other):
    width = min(box.x1, other.x1) - max(box.x0, other.x0)
    height = min(box.y1, other.y1) - max(box.y0, other.y0)
    return max(width, 0) * max(height, 0)


def _bright_model():
    import keras

    inputs = keras.Input((8, 8, 1))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.Model(inputs, keras.layers.Concatenate()([20 * (mean - 0.6), 20 * (0.6 - mean)]))


def test_tolerance_figures_fit_long_run_names(tmp_path, figures):
    model = _bright_model()
    images = np.ones((3, 8, 8, 1), "float32") * np.array([1.0, 0.9, 0.61],
                                                          "float32")[:, None, None, None]
    result = perturbation_tolerance(model, images, [0, 0, 0], fractions=[0.0, 0.2, 0.5, 0.8])
    results = {name: result for name in LONG_NAMES}
    plot_tolerance_distribution(results, tmp_path / "distribution.png")
    plot_tolerance_distribution({LONG_NAMES[0]: result}, tmp_path / "one.png")
    plot_tolerance_example(images[0], 0, results, 0, tmp_path / "example.png",
                           title="Perturbation tolerance of three models on one CIFAR-10 test "
                                 "image, pixels set to zero in a random order")
    for figure in figures:
        assert layout_problems(figure) == []


def test_one_corruption_heatmap_fits(tmp_path, figures):
    results = {name: {"fog": [0.9, 0.8, 0.7, 0.6, 0.5]} for name in LONG_NAMES[:2]}
    plot_corruption_heatmap(results, tmp_path / "heatmap.png")
    plot_corruption_heatmap({LONG_NAMES[0]: results[LONG_NAMES[0]]}, tmp_path / "single.png",
                            title=f"CIFAR-10-C accuracy of {LONG_NAMES[0]} under fog, by severity")
    for figure in figures:
        assert layout_problems(figure) == []
        # The heatmaps and the colour bar keep a readable height with a single corruption.
        assert min(axes.get_position().height for axes in figure.axes) \
            * figure.get_figheight() > 0.5


def test_saliency_comparison_fits_long_run_names(tmp_path, figures):
    import keras

    inputs = keras.Input((12, 12, 3))
    features = keras.layers.Conv2D(4, 3, activation="relu", name="features")(inputs)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(features))
    model = keras.Model(inputs, outputs)
    images = np.random.default_rng(0).uniform(size=(1, 12, 12, 3)).astype("float32")
    plot_saliency_comparison([model, model], images, tmp_path / "saliency.png", labels=[0],
                             model_names=LONG_NAMES[:2], class_names=["airplane", "automobile",
                                                                       "bird"],
                             title="Saliency of two long-named runs on clean CIFAR-10 images")
    assert layout_problems(figures[0]) == []
