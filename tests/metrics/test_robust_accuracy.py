"""robust_accuracy sweeps: counting, exactness at eps=0, files, resume, the paper protocol, bad input."""

import csv
import os
import subprocess
import sys
import textwrap
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from attack_toys import predictions

from keras_equivariant.attacks import AttackSpec, pgd
from keras_equivariant.metrics import RobustAccuracyReport, robust_accuracy
from keras_equivariant.metrics.robust_accuracy import batch_seed


def _dataset(images, labels, batch_size=64):
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)


def test_robust_only_if_clean_correct_and_adversarial_correct(toy_model, toy_data):
    images, labels = toy_data
    report = robust_accuracy(toy_model, _dataset(images, labels), eps=[0.05], seed=3, verbose=0)
    expected = 0
    for index, start in enumerate(range(0, len(images), 64)):
        batch, batch_labels = images[start:start + 64], labels[start:start + 64]
        correct = predictions(toy_model, batch) == batch_labels
        adversarial = pgd(toy_model, batch[correct], batch_labels[correct], 0.05,
                          seed=batch_seed(3, index))
        expected += int(np.sum(predictions(toy_model, adversarial) == batch_labels[correct]))
    assert report.num_robust == [expected]
    assert report.accuracy == [expected / len(images)]
    assert report.num_examples == len(images)
    assert report.clean_accuracy == np.mean(predictions(toy_model, images) == labels) < 1.0


def test_per_example_flags_in_dataset_order(toy_model, toy_data, tmp_path):
    images, labels = toy_data
    report = robust_accuracy(toy_model, _dataset(images, labels), eps=[0.0, 0.05], seed=3,
                             verbose=0, output_dir=tmp_path, model_name="toy")
    clean = report.robust_examples_at(0.0)
    np.testing.assert_array_equal(clean, predictions(toy_model, images) == labels)
    robust = report.robust_examples_at(0.05)
    assert robust.dtype == bool and robust.shape == (len(images),)
    assert int(robust.sum()) == report.num_robust[1] and not np.any(robust & ~clean)
    reloaded = RobustAccuracyReport.from_json(tmp_path / "toy_default_pgd_Linf.json")
    np.testing.assert_array_equal(reloaded.robust_examples_at(0.05), robust)
    with pytest.raises(ValueError, match="was not evaluated"):
        report.robust_examples_at(0.3)
    merged = RobustAccuracyReport.from_dict({**report.to_dict(), "robust_examples": []})
    with pytest.raises(ValueError, match="keeps no per-example flags"):
        merged.robust_examples_at(0.05)


def test_eps_zero_equals_clean_and_accuracy_falls_with_eps(toy_model, toy_data):
    images, labels = toy_data
    report = robust_accuracy(toy_model, (images, labels), eps=[0.0, 0.02, 0.05, 0.1, 0.3],
                             verbose=0)
    assert report.accuracy[0] == report.clean_accuracy
    assert all(b <= a + 0.005 for a, b in zip(report.accuracy, report.accuracy[1:]))
    assert report.accuracy[-1] == 0.0
    assert report.eps_pixel == report.eps and report.protocol == "default"
    assert report.attack["random_start"] and report.attack["keep_best"]
    assert report.step_size_pixel == pytest.approx([2.5 * e / 10 for e in report.eps])


def test_fgsm_and_l2_sweeps(toy_model, toy_data):
    images, labels = toy_data
    fgsm_report = robust_accuracy(toy_model, (images, labels), attack="fgsm", eps=[0.05],
                                  verbose=0)
    pgd_report = robust_accuracy(toy_model, (images, labels), attack="pgd", eps=[0.05],
                                 steps=20, verbose=0)
    assert pgd_report.accuracy[0] <= fgsm_report.accuracy[0] + 0.005
    l2 = robust_accuracy(toy_model, (images, labels), norm="2", verbose=0)
    assert l2.eps == [0.0, 0.125, 0.25, 0.5, 1.0] and l2.attack["norm"] == "2"
    assert l2.accuracy[0] == l2.clean_accuracy > l2.accuracy[-1]


def test_report_files_round_trip(toy_model, toy_data, tmp_path):
    images, labels = toy_data
    report = robust_accuracy(toy_model, (images, labels), eps=[0.0, 0.05], max_batches=2,
                             verbose=0, model_name="toy")
    assert report.num_examples == 240  # two batches: 128 + 112
    report.to_json(tmp_path / "r.json")
    report.to_csv(tmp_path / "r.csv")
    again = RobustAccuracyReport.from_json(tmp_path / "r.json")
    assert again == report
    with open(tmp_path / "r.csv") as file:
        rows = list(csv.DictReader(file))
    assert [float(row["eps"]) for row in rows] == [0.0, 0.05]
    assert [float(row["accuracy"]) for row in rows] == report.accuracy
    assert rows[0]["model_name"] == "toy" and rows[0]["protocol"] == "default"
    assert "clean accuracy" in str(report)


def test_max_batches_limits_the_evaluation(toy_model, toy_data):
    images, labels = toy_data
    report = robust_accuracy(toy_model, _dataset(images, labels, 50), eps=[0.0], max_batches=2,
                             verbose=0)
    assert report.num_examples == 100 and report.max_batches == 2


def test_interrupted_sweep_resumes_without_recomputing(toy_model, toy_data, tmp_path,
                                                       monkeypatch, capsys):
    images, labels = toy_data
    dataset = _dataset(images, labels)
    grid = [0.0, 0.02, 0.05, 0.1]
    uninterrupted = robust_accuracy(toy_model, dataset, eps=grid, seed=5, verbose=0,
                                    model_name="toy")
    original_run = AttackSpec.run
    attacked_eps = []

    def interrupted_run(self, model, images, labels, eps_pixel, seed=0):
        if eps_pixel == 0.05:
            raise RuntimeError("interrupted")
        attacked_eps.append(eps_pixel)
        return original_run(self, model, images, labels, eps_pixel, seed)

    monkeypatch.setattr(AttackSpec, "run", interrupted_run)
    with pytest.raises(RuntimeError, match="interrupted"):
        robust_accuracy(toy_model, dataset, eps=grid, seed=5, verbose=0, model_name="toy",
                        output_dir=tmp_path)
    json_path = tmp_path / "toy_default_pgd_Linf.json"
    partial = RobustAccuracyReport.from_json(json_path)
    assert partial.eps == [0.0, 0.02]  # written after each finished eps, atomically
    with open(tmp_path / "toy_default_pgd_Linf.csv") as file:
        assert len(list(csv.DictReader(file))) == 2

    attacked_eps.clear()
    monkeypatch.setattr(AttackSpec, "run", lambda self, *args: (
        attacked_eps.append(args[3]), original_run(self, *args))[1])
    resumed = robust_accuracy(toy_model, dataset, eps=grid, seed=5, verbose=0, model_name="toy",
                              output_dir=tmp_path)
    assert set(attacked_eps) == {0.05, 0.1}  # finished budgets are not recomputed
    assert resumed == uninterrupted
    assert RobustAccuracyReport.from_json(json_path) == uninterrupted

    attacked_eps.clear()
    capsys.readouterr()
    assert robust_accuracy(toy_model, dataset, eps=grid, seed=5, verbose=1, model_name="toy",
                           output_dir=tmp_path) == uninterrupted
    assert attacked_eps == []
    assert "pgd: reusing 4 finished eps (0, 0.02, 0.05, 0.1; pixel [0, 1]) from" in \
        capsys.readouterr().out


def test_resume_refuses_different_settings(toy_model, toy_data, tmp_path):
    images, labels = toy_data
    robust_accuracy(toy_model, (images, labels), eps=[0.0], verbose=0, model_name="toy",
                    output_dir=tmp_path)
    with pytest.raises(ValueError, match="different settings"):
        robust_accuracy(toy_model, (images, labels), eps=[0.0], steps=20, verbose=0,
                        model_name="toy", output_dir=tmp_path)


def test_resume_refuses_different_data_even_when_every_budget_is_finished(toy_model, toy_data,
                                                                         tmp_path):
    """Reusing finished budgets must not return results of another dataset (e.g. a subset)."""
    images, labels = toy_data
    robust_accuracy(toy_model, (images[:40], labels[:40]), eps=[0.0, 0.05], verbose=0,
                    model_name="toy", output_dir=tmp_path)
    with pytest.raises(ValueError, match="evaluated data changed"):
        robust_accuracy(toy_model, (images, labels), eps=[0.0, 0.05], verbose=0,
                        model_name="toy", output_dir=tmp_path)
    resumed = robust_accuracy(toy_model, (images[:40], labels[:40]), eps=[0.0, 0.05], verbose=0,
                              model_name="toy", output_dir=tmp_path)
    assert resumed.num_examples == 40


def _paper_reference_accuracy(model, images, labels, eps):
    """The official evaluation written literally: normalized [-1, 1] inputs, PGD-40, step 0.01,
    no random start, clamp to the eps-ball and to [-1, 1], last iterate; mean-reduced CE."""
    normalized = tf.constant(2 * images - 1)
    adversarial = normalized
    labels_tensor = tf.constant(labels)
    for _ in range(40):
        with tf.GradientTape() as tape:
            tape.watch(adversarial)
            logits = model((adversarial + 1) / 2, training=False)  # model(Normalize^-1(z))
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                labels_tensor, logits, from_logits=True))
        step = adversarial + 0.01 * tf.sign(tape.gradient(loss, adversarial))
        adversarial = tf.clip_by_value(tf.clip_by_value(step, normalized - eps, normalized + eps),
                                       -1.0, 1.0)
    clean_correct = predictions(model, images) == labels
    adversarial_correct = predictions(model, ((adversarial + 1) / 2).numpy()) == labels
    return np.mean(clean_correct & adversarial_correct)


def test_paper_protocol_matches_a_literal_normalized_space_implementation(toy_model, toy_data):
    images, labels = toy_data
    grid = [0.02, 0.06, 0.1]
    report = robust_accuracy(toy_model, (images, labels), eps=grid, protocol="paper", verbose=0)
    assert report.protocol == "paper" and report.eps == grid
    assert report.eps_pixel == pytest.approx([e / 2 for e in grid])
    assert report.attack["steps"] == 40 and report.attack["random_start"] is False
    assert report.attack["keep_best"] is False and report.step_size_pixel == [0.005] * 3
    for eps, accuracy in zip(grid, report.accuracy):
        reference = _paper_reference_accuracy(toy_model, images, labels, eps)
        assert abs(accuracy - reference) <= 1 / len(images) + 1e-9


def test_paper_protocol_default_grid(toy_model, toy_data):
    images, labels = toy_data
    report = robust_accuracy(toy_model, (images[:32], labels[:32]), attack="fgsm",
                             protocol="paper", verbose=0)
    assert report.eps == pytest.approx([0.01 * k for k in range(1, 16)])
    assert report.step_size_pixel == pytest.approx([0.005 * k for k in range(1, 16)])


def test_progress_bar_and_silence(toy_model, toy_data, capsys):
    images, labels = toy_data
    robust_accuracy(toy_model, (images, labels), eps=[0.01], verbose=1)
    assert "robust_accuracy" in capsys.readouterr().out
    robust_accuracy(toy_model, (images, labels), eps=[0.01], verbose=0)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("kwargs, message", [
    ({"protocol": "fast"}, r"\['default', 'paper'\]"),
    ({"eps": [-0.1]}, ">= 0"),
    ({"eps": [0.1, 0.1]}, "twice"),
    ({"attack": "cw"}, "Unknown attack"),
    ({"protocol": "paper", "steps": 10}, "fixes steps"),
    ({"max_batches": 0}, "max_batches"),
])
def test_bad_arguments_raise(toy_model, toy_data, kwargs, message):
    images, labels = toy_data
    with pytest.raises(ValueError, match=message):
        robust_accuracy(toy_model, (images, labels), verbose=0, **{"eps": [0.1], **kwargs})


def test_bad_batches_raise(toy_model, toy_data):
    images, labels = toy_data
    with pytest.raises(ValueError, match="divide uint8 images by 255"):
        robust_accuracy(toy_model, (images * 255, labels), eps=[0.1], verbose=0)
    with pytest.raises(ValueError, match="num_classes"):
        robust_accuracy(toy_model, (images, labels + 3), eps=[0.1], verbose=0)
    with pytest.raises(ValueError, match="rank-4"):
        robust_accuracy(toy_model, tf.data.Dataset.from_tensor_slices((images, labels)),
                        eps=[0.1], verbose=0)
    with pytest.raises(ValueError, match="tf.data.Dataset"):
        robust_accuracy(toy_model, images, eps=[0.1], verbose=0)


def test_probability_model_warns(toy_model, toy_data):
    images, labels = toy_data
    softmax_model = keras.Sequential([toy_model, keras.layers.Softmax()])
    with pytest.warns(UserWarning, match="look like probabilities"):
        robust_accuracy(softmax_model, (images[:16], labels[:16]), eps=[0.0], verbose=0)


def test_json_is_plain(toy_model, toy_data, tmp_path):
    images, labels = toy_data
    report = robust_accuracy(toy_model, (images[:16], labels[:16]), eps=[0.0], verbose=0)
    payload = json.loads(report.to_json(tmp_path / "r.json").read_text())
    assert payload["attack"]["attack"] == "pgd" and payload["eps"] == [0.0]


def test_sweeps_split_each_batch_over_the_replicas_of_the_active_strategy(tmp_path):
    """Two logical CPU devices under MirroredStrategy: the attack runs on both devices and the
    deterministic attacks (FGSM, the paper's PGD without random start) give the same flags as
    on one device."""
    script = textwrap.dedent("""
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras
        from keras_equivariant import models, training
        from keras_equivariant.attacks import protocols
        from keras_equivariant.metrics import robust_accuracy
        keras.utils.set_random_seed(0)
        model = models.BaselineCNN(num_classes=10, depth=4)
        rng = np.random.default_rng(0)
        images = rng.uniform(size=(24, 32, 32, 3)).astype("float32")
        labels = np.argmax(model.predict(images, verbose=0), axis=-1)  # all clean-correct
        devices = set()
        run = protocols.AttackSpec.run
        def recording_run(self, model, images, *args, **kwargs):
            adversarial = run(self, model, images, *args, **kwargs)
            devices.add(adversarial.device.split(":")[-1])
            return adversarial
        protocols.AttackSpec.run = recording_run
        for attack, protocol, eps in (("fgsm", "default", [0.0, 0.05 / 255, 0.2 / 255]),
                                      ("pgd", "paper", [0.0, 0.1 / 255, 0.4 / 255])):
            arguments = dict(attack=attack, protocol=protocol, eps=eps, verbose=0)
            single = robust_accuracy(model, (images, labels), **arguments)
            strategy = training.select_strategy("auto")
            assert strategy.num_replicas_in_sync == 2, strategy
            with strategy.scope():
                split = robust_accuracy(model, (images, labels), **arguments)
            assert split.robust_examples == single.robust_examples, (attack, split, single)
            assert 0 < sum(single.accuracy[1:]) < len(eps) - 1, single.accuracy  # mixed flags
        print("DEVICES", sorted(devices))
    """)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "DEVICES ['0', '1']" in completed.stdout
