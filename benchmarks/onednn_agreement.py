"""oneDNN on or off: how much results and speed change with ``TF_ENABLE_ONEDNN_OPTS``.

TensorFlow fixes its CPU kernels (oneDNN or Eigen) when it is imported, so the two settings run
in two worker subprocesses (``TF_ENABLE_ONEDNN_OPTS=0`` and ``=1``) that stay alive side by side
and are driven by this script:

1. the ``=0`` worker builds each model with a fixed seed, trains it for ``--train-steps`` Adam
   steps on the shipped CIFAR-10 subset (so that logits and robust flags are not those of a
   random network) and saves the weights; both workers load these weights;
2. each worker computes, on the same ``--num-images`` subset images (kept out of training), the
   logits, the input gradients of the cross-entropy (true labels) and the robust flags of
   PGD-10 (L-inf, random start with the same seed, step 2.5 eps / 10) at each ``--eps``;
3. the speed of one input-gradient pass and of one ``train_on_batch`` (batch ``--batch-size``)
   is timed in interleaved rounds, the two workers taking turns, so that the load of a shared
   machine hits both settings alike.

Reported per model: the max relative difference of the logits and of the input gradients
(per image ``max |a - b| / max |a|``, the maximum over images), how many clean predictions and
PGD robust flags differ between the settings, and images/s of both passes in each setting with
the ratio (oneDNN on / off). Writes ``benchmarks/results/onednn_agreement.md`` and ``.json``
(``--output-dir``), and names the CPU, its instruction set and TensorFlow's default setting.

Usage::

    python benchmarks/onednn_agreement.py [--num-images 1280] [--rounds 5] [--repeats 2]
        [--models BaselineCNN ParallelGCNN] [--depths 4 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SETTINGS = ("0", "1")  # TF_ENABLE_ONEDNN_OPTS of the two workers
RESULTS = Path(__file__).resolve().parent / "results"


def parse_eps(text):
    """``"1/255"`` or ``"0.01"`` as a float > 0."""
    try:
        numerator, _, denominator = text.partition("/")
        value = float(numerator) / float(denominator or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 8/255; received {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0; received {text!r}")
    return value


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; received {value}")
    return value


def eps_name(eps):
    """``8/255`` for 8/255: the budgets' names in arrays and tables."""
    return f"{eps * 255:.4g}/255"


def model_names(args):
    return [f"{builder}(depth={depth})" for builder in args.models for depth in args.depths]


# ----------------------------------------------------------------------------------- worker


class Worker:
    """One TensorFlow process under one oneDNN setting; answers the driver's JSON commands."""

    def __init__(self, args):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras
        import tensorflow as tf

        import keras_equivariant
        from keras_equivariant import data

        self.keras, self.tf, self.library, self.args = keras, tf, keras_equivariant, args
        images, labels = data.load_arrays("cifar10", "train", data_dir=data.sample_data_dir())
        images = images.astype(np.float32) / 255.0
        count = args.num_images
        if count >= len(labels):
            raise ValueError(f"--num-images must be below the {len(labels)} training images of "
                             f"the shipped subset (the rest trains the models); received {count}")
        self.images, self.labels = images[:count], labels[:count].astype(np.int32)
        self.train_images, self.train_labels = images[count:], labels[count:].astype(np.int32)
        self.steps = {}

    def build(self, name, weights_dir=None):
        builder, depth = name.split("(depth=")
        self.keras.utils.set_random_seed(0)
        model = getattr(self.library, builder)(num_classes=10, depth=int(depth.rstrip(")")))
        if weights_dir is not None:
            model.load_weights(Path(weights_dir) / f"{name}.weights.h5")
        return model

    def compiled(self, model):
        model.compile(optimizer=self.keras.optimizers.Adam(1e-3),
                      loss=self.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    def gradient_function(self, model):
        loss = self.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        tf = self.tf

        @tf.function
        def gradient(images, labels):
            with tf.GradientTape() as tape:
                tape.watch(images)
                value = loss(labels, model(images, training=False))
            return tape.gradient(value, images)

        return gradient

    def prepare(self, weights_dir):
        """Trains each model briefly (seeded batches) and saves its weights; returns accuracies."""
        accuracies = {}
        rng = np.random.default_rng(0)
        for name in model_names(self.args):
            model = self.compiled(self.build(name))
            for _ in range(self.args.train_steps):
                batch = rng.choice(len(self.train_labels), self.args.batch_size, replace=False)
                model.train_on_batch(self.train_images[batch], self.train_labels[batch])
            model.save_weights(Path(weights_dir) / f"{name}.weights.h5")
            predictions = np.argmax(model.predict(self.images, batch_size=256, verbose=0), -1)
            accuracies[name] = float(np.mean(predictions == self.labels))
        return accuracies

    def evaluate(self, weights_dir, output):
        """Logits, input gradients and PGD-10 robust flags of every model, saved to ``output``."""
        from keras_equivariant.attacks import pgd

        arrays = {}
        batch = self.args.batch_size
        for name in model_names(self.args):
            model = self.build(name, weights_dir)
            gradient = self.gradient_function(model)
            logits, gradients = [], []
            for start in range(0, len(self.labels), batch):
                images = self.tf.constant(self.images[start:start + batch])
                labels = self.tf.constant(self.labels[start:start + batch])
                logits.append(model(images, training=False).numpy())
                gradients.append(gradient(images, labels).numpy())
            arrays[f"{name}/logits"] = np.concatenate(logits)
            arrays[f"{name}/gradients"] = np.concatenate(gradients)
            for eps in self.args.eps:
                flags = []
                for start in range(0, len(self.labels), batch):
                    images = self.images[start:start + batch]
                    labels = self.labels[start:start + batch]
                    adversarial = pgd(model, images, labels, eps, steps=10, seed=0)
                    predictions = np.argmax(model(adversarial, training=False).numpy(), -1)
                    flags.append(predictions == labels)
                arrays[f"{name}/robust@{eps_name(eps)}"] = np.concatenate(flags)
        np.savez(output, **arrays)
        return {}

    def prepare_timing(self, weights_dir):
        """Warm, traced steps: an input-gradient pass and a train_on_batch per model."""
        images = self.tf.constant(self.images[:self.args.batch_size])
        labels = self.tf.constant(self.labels[:self.args.batch_size])
        for name in model_names(self.args):
            gradient = self.gradient_function(self.build(name, weights_dir))
            trained = self.compiled(self.build(name, weights_dir))
            self.steps[f"{name} input gradient"] = (
                lambda gradient=gradient: gradient(images, labels).numpy())
            self.steps[f"{name} train_on_batch"] = (
                lambda trained=trained: trained.train_on_batch(images, labels))
        for step in self.steps.values():
            step()
        return {"steps": list(self.steps)}

    def time(self, name, repeats):
        """Seconds per call of step ``name``, averaged over ``repeats`` calls."""
        start = time.perf_counter()
        for _ in range(repeats):
            self.steps[name]()
        return {"seconds": (time.perf_counter() - start) / repeats}

    def describe(self):
        from keras_equivariant.utils.platform import cpu_model, describe, instruction_set

        return {"describe": describe(), "cpu": cpu_model(), "instruction_set": instruction_set(),
                "tensorflow": self.tf.__version__, "keras": self.keras.__version__}


def run_worker(args):
    """Reads one JSON command per line from stdin, answers one JSON line on the original stdout
    (everything else the process prints goes to stderr)."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    worker = Worker(args)
    for line in sys.stdin:
        command = json.loads(line)
        operation = command.pop("operation")
        try:
            reply = {"ok": True, **getattr(worker, operation)(**command)}
        except Exception as error:  # reported to the driver, which stops with the message
            reply = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


# ----------------------------------------------------------------------------------- driver


class WorkerProcess:
    """The driver's handle on one worker subprocess."""

    def __init__(self, setting, argv):
        env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": setting,
               "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
        self.setting = setting
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", *argv], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def __call__(self, operation, **arguments):
        self.process.stdin.write(json.dumps({"operation": operation, **arguments}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the TF_ENABLE_ONEDNN_OPTS={self.setting} worker exited "
                               f"(code {self.process.wait()}); its stderr is above")
        reply = json.loads(line)
        if not reply.pop("ok"):
            raise RuntimeError(f"TF_ENABLE_ONEDNN_OPTS={self.setting} worker, {operation}: "
                               f"{reply['error']}")
        return reply

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


def max_relative_difference(reference, other):
    """Per image ``max |reference - other| / max |reference|``, the maximum over images."""
    axes = tuple(range(1, reference.ndim))
    scale = np.maximum(np.max(np.abs(reference), axis=axes), np.finfo(np.float32).tiny)
    return float(np.max(np.max(np.abs(reference - other), axis=axes) / scale))


def compare(off, on, args):
    """Per-model agreement of the two workers' saved arrays."""
    rows = {}
    for name in model_names(args):
        logits_off, logits_on = off[f"{name}/logits"], on[f"{name}/logits"]
        row = {
            "logits_max_relative_difference": max_relative_difference(logits_off, logits_on),
            "input_gradient_max_relative_difference": max_relative_difference(
                off[f"{name}/gradients"], on[f"{name}/gradients"]),
            "clean_predictions_changed": int(np.sum(
                np.argmax(logits_off, -1) != np.argmax(logits_on, -1))),
            "pgd10": {},
        }
        for eps in args.eps:
            key = f"{name}/robust@{eps_name(eps)}"
            flags_off, flags_on = off[key], on[key]
            row["pgd10"][eps_name(eps)] = {
                "robust_off": int(flags_off.sum()), "robust_on": int(flags_on.sum()),
                "flags_changed": int(np.sum(flags_off != flags_on))}
        rows[name] = row
    return rows


def interleaved_speeds(workers, steps, args):
    """Median images/s of every step in each setting, the workers taking turns each round."""
    samples = {(setting, step): [] for setting in SETTINGS for step in steps}
    for round_index in range(args.rounds):
        for step in steps:
            for setting in (SETTINGS if round_index % 2 == 0 else SETTINGS[::-1]):
                seconds = workers[setting]("time", name=step, repeats=args.repeats)["seconds"]
                samples[(setting, step)].append(seconds)
        print(f"  timing round {round_index + 1}/{args.rounds} done", flush=True)
    return {step: {setting: args.batch_size / float(np.median(samples[(setting, step)]))
                   for setting in SETTINGS} for step in steps}


def render(report):
    args = report["arguments"]
    lines = [
        "# oneDNN on vs off: agreement and speed",
        "",
        f"Machine: {report['machine']['cpu']} ({report['machine']['instruction_set']}), "
        f"{report['machine']['cores']} cores; TensorFlow's default here: "
        f"{report['machine']['default']}; TensorFlow {report['machine']['tensorflow']}, "
        f"Keras {report['machine']['keras']}; load average at the start "
        f"{report['load_average'][0]}, at the end {report['load_average'][1]}.",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Models: seeded builders trained {args['train_steps']} Adam steps (batch "
        f"{args['batch_size']}) on the shipped CIFAR-10 subset under TF_ENABLE_ONEDNN_OPTS=0; "
        f"both settings load the same weights. Agreement on {args['num_images']} held-out "
        "subset images: relative difference = per image max |off - on| / max |off|, maximum "
        "over images; PGD-10 = L-inf, random start (same seed), step 2.5 eps / 10, robust = "
        "still correctly classified.",
        "",
        "| model | accuracy (held-out) | logits rel. diff | input-gradient rel. diff | clean "
        "predictions changed | " + " | ".join(
            f"PGD-10 eps {eps} robust off / on, flags changed" for eps in report["eps_names"])
        + " |",
        "|---|---|---|---|---|" + "---|" * len(report["eps_names"]),
    ]
    for name, row in report["agreement"].items():
        pgd = " | ".join(
            f"{cell['robust_off']} / {cell['robust_on']}, {cell['flags_changed']} changed"
            for cell in row["pgd10"].values())
        lines.append(
            f"| {name} | {report['accuracy'][name]:.3f} | "
            f"{row['logits_max_relative_difference']:.2e} | "
            f"{row['input_gradient_max_relative_difference']:.2e} | "
            f"{row['clean_predictions_changed']} / {args['num_images']} | {pgd} |")
    lines += [
        "",
        f"Speed: images/s, batch {args['batch_size']}, median of {args['rounds']} interleaved "
        f"rounds x {args['repeats']} calls (the two settings' processes alive side by side "
        "and taking turns).",
        "",
        "| step | oneDNN off | oneDNN on | on / off |",
        "|---|---|---|---|",
    ]
    for step, speeds in report["speed"].items():
        lines.append(f"| {step} | {speeds['0']:.1f} | {speeds['1']:.1f} | "
                     f"{speeds['1'] / speeds['0']:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=positive_int, default=1280,
                        help="held-out subset images for the agreement (default %(default)s)")
    parser.add_argument("--models", nargs="+", default=["BaselineCNN", "ParallelGCNN"],
                        help="keras_equivariant builders (default %(default)s)")
    parser.add_argument("--depths", nargs="+", type=int, default=[4, 10], choices=[4, 10])
    parser.add_argument("--eps", nargs="+", type=parse_eps, default=[1 / 255, 8 / 255],
                        help="L-inf budgets of the PGD-10 robust flags (default 1/255 8/255)")
    parser.add_argument("--train-steps", type=positive_int, default=40)
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--rounds", type=positive_int, default=5)
    parser.add_argument("--repeats", type=positive_int, default=2, help="calls per round")
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args)

    worker_argv = list(sys.argv[1:] if argv is None else argv)
    load_start = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    workers = {setting: WorkerProcess(setting, worker_argv) for setting in SETTINGS}
    try:
        with tempfile.TemporaryDirectory() as folder:
            print("training the seeded models (TF_ENABLE_ONEDNN_OPTS=0 worker) ...", flush=True)
            accuracy = workers["0"]("prepare", weights_dir=folder)
            arrays = {}
            for setting in SETTINGS:
                print(f"logits, gradients, PGD-10 (TF_ENABLE_ONEDNN_OPTS={setting}) ...",
                      flush=True)
                output = str(Path(folder) / f"onednn_{setting}.npz")
                workers[setting]("evaluate", weights_dir=folder, output=output)
                arrays[setting] = dict(np.load(output))
            steps = workers["0"]("prepare_timing", weights_dir=folder)["steps"]
            workers["1"]("prepare_timing", weights_dir=folder)
        print("timing ...", flush=True)
        speed = interleaved_speeds(workers, steps, args)
        machine = {setting: workers[setting]("describe") for setting in SETTINGS}
    finally:
        for worker in workers.values():
            worker.close()

    default = subprocess.run(  # TensorFlow's own choice for this CPU, variable unset
        [sys.executable, "-c", "from tensorflow.python.util import _pywrap_util_port as p; "
         "print(int(p.IsMklEnabled()))"], capture_output=True, text=True,
        env={**{k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"},
             "TF_CPP_MIN_LOG_LEVEL": "3"}).stdout.strip()
    report = {
        "command": " ".join(["python benchmarks/onednn_agreement.py", *worker_argv]),
        "arguments": {key: value for key, value in vars(args).items()
                      if key not in ("worker", "output_dir")},
        "machine": {"cpu": machine["0"]["cpu"], "instruction_set": machine["0"]["instruction_set"],
                    "cores": os.cpu_count(),
                    "default": {"1": "oneDNN on", "0": "oneDNN off"}.get(default, "unknown"),
                    "tensorflow": machine["0"]["tensorflow"], "keras": machine["0"]["keras"],
                    "workers": {setting: machine[setting]["describe"] for setting in SETTINGS}},
        "load_average": [load_start, ", ".join(f"{value:.1f}" for value in os.getloadavg())],
        "accuracy": accuracy,
        "eps_names": [eps_name(eps) for eps in args.eps],
        "agreement": compare(arrays["0"], arrays["1"], args),
        "speed": speed,
    }
    text = render(report)
    print("\n" + text)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "onednn_agreement.md").write_text(text)
    (args.output_dir / "onednn_agreement.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output_dir / 'onednn_agreement.md'} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
