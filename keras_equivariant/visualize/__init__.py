"""keras_equivariant.visualize: explanation maps, perturbation tolerance and robustness figures.

- :func:`saliency_maps`, :func:`find_penultimate_layer`, :func:`plot_saliency_comparison`:
  vanilla-gradient saliency, SmoothGrad and GradCAM++ (tf-keras-vis) on the logits.
- :func:`perturbation_tolerance`, :func:`plot_tolerance_distribution`,
  :func:`plot_tolerance_example`: how many randomly removed pixels a correct prediction survives
  (nested random masks).
- :func:`rotation_feature_maps`, :func:`plot_rotation_equivariance`: the cyclic shift of the group
  axis of a rotation layer under a 90-degree rotation of its input.
- :func:`plot_robustness_panels`: accuracy vs eps, one panel per attack (FGSM | PGD), several
  models with seed bands (each panel drawn by ``keras_equivariant.metrics.plot_robust_accuracy``).
- :func:`plot_corruption_heatmap`: CIFAR-10-C accuracy by corruption and severity.
- :func:`write_explanations`: every figure above for a set of models (``keras-equivariant
  explain``).
"""

from keras_equivariant.visualize.corruption import corruption_tables, plot_corruption_heatmap
from keras_equivariant.visualize.equivariance import (plot_rotation_equivariance,
                                                      rotation_feature_maps)
from keras_equivariant.visualize.report import write_explanations
from keras_equivariant.visualize.robustness import plot_robustness_panels
from keras_equivariant.visualize.saliency import (find_penultimate_layer, plot_saliency_comparison,
                                                  saliency_maps)
from keras_equivariant.visualize.tolerance import (perturbation_tolerance,
                                                   plot_tolerance_distribution,
                                                   plot_tolerance_example, removal_masks,
                                                   tolerance_from_correct)
