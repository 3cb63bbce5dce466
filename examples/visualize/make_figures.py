"""Regenerates the figures in ``examples/visualize/`` from trained ``.keras`` models.

```
python examples/visualize/make_figures.py \
    --models runs/BaselineCNN-s0/model.keras runs/BaselineCNN-s1/model.keras \
             runs/ParallelGCNN-s0/model.keras runs/ParallelGCNN-s1/model.keras \
    --names BaselineCNN BaselineCNN ParallelGCNN ParallelGCNN \
    --data-dir data --output-dir examples/visualize
```

Models sharing a name are seeds of one architecture: the explanation figures use the first
of each, the robustness curves average the seeds (band = +- one standard deviation). The curves
read the reports that ``keras-equivariant evaluate`` wrote in each run's ``evaluation/`` folder.

``--corruption-demo`` re-creates five CIFAR-10-C corruptions (gaussian/shot/impulse noise,
brightness, contrast; the severity parameters of Hendrycks & Dietterich's ``make_cifar_c.py``) on
the local test images, writes them in the CIFAR-10-C file layout, runs
``keras-equivariant evaluate --skip-attacks --corruptions ...`` on the first model of each name and
draws the heatmap. These are re-created corruptions, not the official CIFAR-10-C files (which
cannot be downloaded here); with the real files pass ``--cifar10-c-dir`` instead.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Severity parameters of the CIFAR-10-C generator (hendrycks/robustness make_cifar_c.py).
_GAUSSIAN_SIGMA = (0.04, 0.06, 0.08, 0.09, 0.10)
_SHOT_PHOTONS = (500, 250, 100, 75, 50)
_IMPULSE_AMOUNT = (0.01, 0.02, 0.03, 0.05, 0.07)
_BRIGHTNESS_SHIFT = (0.05, 0.1, 0.15, 0.2, 0.3)
_CONTRAST_FACTOR = (0.75, 0.5, 0.4, 0.3, 0.15)
DEMO_CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "brightness", "contrast")


def corrupt(images, corruption, severity, rng):
    """One CIFAR-10-C corruption of float images in [0, 1] at severity 1..5."""
    from matplotlib.colors import hsv_to_rgb, rgb_to_hsv

    level = severity - 1
    if corruption == "gaussian_noise":
        out = images + rng.normal(scale=_GAUSSIAN_SIGMA[level], size=images.shape)
    elif corruption == "shot_noise":
        out = rng.poisson(images * _SHOT_PHOTONS[level]) / _SHOT_PHOTONS[level]
    elif corruption == "impulse_noise":  # salt and pepper on single values
        out = images.copy()
        hit = rng.uniform(size=images.shape) < _IMPULSE_AMOUNT[level]
        out[hit] = rng.integers(0, 2, size=int(hit.sum()))
    elif corruption == "brightness":
        hsv = rgb_to_hsv(images)
        hsv[..., 2] = np.clip(hsv[..., 2] + _BRIGHTNESS_SHIFT[level], 0, 1)
        out = hsv_to_rgb(hsv)
    elif corruption == "contrast":
        means = images.mean(axis=(1, 2), keepdims=True)
        out = (images - means) * _CONTRAST_FACTOR[level] + means
    else:
        raise ValueError(f"Unknown demo corruption {corruption!r}; expected one of {DEMO_CORRUPTIONS}.")
    return np.clip(out, 0, 1)


def write_demo_cifar10_c(images, labels, folder, seed=0):
    """Writes ``<corruption>.npy`` (uint8, severities 1..5 stacked) and ``labels.npy``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for corruption in DEMO_CORRUPTIONS:
        blocks = [np.uint8(np.round(255 * corrupt(images, corruption, severity, rng)))
                  for severity in range(1, 6)]
        np.save(folder / f"{corruption}.npy", np.concatenate(blocks))
    np.save(folder / "labels.npy", np.tile(labels.astype(np.uint8), 5))
    return folder


def robustness_reports(model_paths, names):
    """The FGSM/PGD reports in each run's ``evaluation/`` folder, renamed to the model's name."""
    from keras_equivariant.metrics import RobustAccuracyReport
    from keras_equivariant.utils.io import read_json

    reports = []
    for path, name in zip(model_paths, names):
        for json_path in sorted((Path(path).parent / "evaluation").glob("*.json")):
            payload = read_json(json_path)
            if isinstance(payload, dict) and {"attack", "accuracy", "eps_pixel"} <= set(payload):
                report = RobustAccuracyReport.from_dict(payload)
                report.model_name = name
                reports.append(report)
    return reports


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--names", nargs="+", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--output-dir", default="examples/visualize")
    parser.add_argument("--num-images", type=int, default=4)
    parser.add_argument("--tolerance-images", type=int, default=200)
    parser.add_argument("--corruption-demo", action="store_true")
    parser.add_argument("--cifar10-c-dir", default=None)
    parser.add_argument("--corruption-images", type=int, default=500)
    args = parser.parse_args(argv)
    if len(args.names) != len(args.models):
        parser.error("--names needs one name per model")

    from keras_equivariant import data, visualize
    from keras_equivariant.cli._common import load_model
    from keras_equivariant.cli.main import main as cli

    output_dir = Path(args.output_dir)
    first = {}
    for path, name in zip(args.models, args.names):
        first.setdefault(name, path)
    models = [load_model(path) for path in first.values()]
    images, labels, info = data.load_arrays("cifar10", "test", data_dir=args.data_dir,
                                            with_info=True)
    count = max(args.num_images, args.tolerance_images)
    visualize.write_explanations(
        models, images[:count] / 255.0, labels[:count], output_dir,
        model_names=list(first), num_images=args.num_images, class_names=info.class_names,
        num_tolerance_images=args.tolerance_images)

    reports = robustness_reports(args.models, args.names)
    if reports:
        visualize.plot_robustness_panels(
            reports, output_dir / "robust_accuracy.png",
            title=f"CIFAR-10 subset, {reports[0].num_examples} test images")
        print(f"wrote {output_dir / 'robust_accuracy.png'} from {len(reports)} reports")

    corruption_dir = args.cifar10_c_dir
    with tempfile.TemporaryDirectory() as scratch:
        if args.corruption_demo and corruption_dir is None:
            corruption_dir = write_demo_cifar10_c(images[:args.corruption_images] / 255.0,
                                                  labels[:args.corruption_images],
                                                  Path(scratch) / "CIFAR-10-C")
        if corruption_dir is not None:
            tables = {}
            for name, path in first.items():
                result_dir = Path(scratch) / name
                corruptions = (DEMO_CORRUPTIONS if args.corruption_demo and not args.cifar10_c_dir
                               else ["all"])
                code = cli(["evaluate", str(path), "--skip-attacks", "--data-dir",
                            str(corruption_dir), "--corruptions", *corruptions,
                            "--output-dir", str(result_dir)])
                if code != 0:
                    raise SystemExit(code)
                tables[name] = result_dir / "corruptions" / "corruptions.json"
            title = ("CIFAR-10-C accuracy (%)" if args.cifar10_c_dir else
                     f"Accuracy (%) under re-created CIFAR-10-C corruptions\n(not the official "
                     f"files; first {args.corruption_images} subset test images)")
            visualize.plot_corruption_heatmap(tables, output_dir / "corruption_heatmap.png",
                                              title=title)
            print(f"wrote {output_dir / 'corruption_heatmap.png'}")


if __name__ == "__main__":
    main()
