"""Clustering, open-set classification and the results folder (the ``cluster`` stage).

- :mod:`~affinitomo.cluster.features`: latents, or latents + template-matching scores (standardised);
- :mod:`~affinitomo.cluster.clustering`: Louvain communities of the kNN graph, HDBSCAN, k-means, GMM;
- :mod:`~affinitomo.cluster.classify`: kNN / logistic classifier with a calibrated 'unknown';
- :mod:`~affinitomo.cluster.classifier_file`: ``classifier.npz``, to classify new data without refitting;
- :mod:`~affinitomo.cluster.results`: class numbering and the files of the results folder;
- :mod:`~affinitomo.cluster.averages`: class averages streamed from the subtomogram stack;
- :mod:`~affinitomo.cluster.decoded`: reconstructions and latent traversals from the trained model;
- :mod:`~affinitomo.cluster.run_info`: ``run.json`` (tomograms, stack, latents, checkpoint) for the viewer;
- :mod:`~affinitomo.cluster.pipeline`: :func:`run_cluster`, the whole stage.
"""

from affinitomo.cluster.pipeline import StageOptions, run_cluster

__all__ = ["StageOptions", "run_cluster"]
