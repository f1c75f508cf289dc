"""Clustering, open-set classification and the results folder (the ``cluster`` stage).

- :mod:`~affinitomo.cluster.features`: latents, or latents + template-matching scores (standardised);
- :mod:`~affinitomo.grouping`: Louvain communities of the kNN graph, HDBSCAN, k-means, GMM;
- :mod:`~affinitomo.cluster.classify`: kNN / logistic classifier with a calibrated 'unknown';
- :mod:`~affinitomo.cluster.classifier_file`: ``classifier.npz``, to classify new data without refitting;
- :mod:`~affinitomo.io.classified`: the classify step's output (``cluster/classified.npz``, ``.json``);
- :mod:`~affinitomo.cluster.results`: class numbering and the files of the results folder;
- :mod:`~affinitomo.cluster.report`: the report step: metrics, plots, ``run.json``;
- :mod:`~affinitomo.cluster.decoded`: reconstructions and latent traversals from the trained model;
- :mod:`~affinitomo.cluster.run_info`: ``run.json`` (tomograms, stack, latents, checkpoint) for the viewer;
- :mod:`~affinitomo.cluster.pipeline`: the classify step and :func:`run_cluster`, the three steps in one process.

The 3-D steps between classification and report (regrouping, alignment, competition, poses,
averages) are :mod:`affinitomo.averaging`.
"""

from affinitomo.cluster.pipeline import StageOptions, run_cluster

__all__ = ["StageOptions", "run_cluster"]
