"""``affinitomo cluster``: classify with an open-set 'unknown' and group the particles (the classify step)."""

from __future__ import annotations

import argparse

from affinitomo.cli.common import add_trust_pickle


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--latents", required=True, help="latents.npz from 'affinitomo encode'")
    parser.add_argument("--embedding", required=True, help="embedding.csv from 'affinitomo embed'")
    parser.add_argument("--particles", required=True, help="the extracted particle table (STAR)")
    parser.add_argument("--out", required=True,
                        help="results folder: writes cluster/classified.npz, cluster/classified.json and "
                             "classifier.npz, read by 'affinitomo average' and 'affinitomo report'")
    parser.add_argument("--matrix", default=None, help="similarity matrix CSV: gives the class order")
    parser.add_argument("--classifier", default=None, metavar="NPZ",
                        help="classifier.npz of an earlier run: classify with it instead of fitting "
                             "(no labelled particles needed; classes and their numbers come from it)")
    add_trust_pickle(parser, "--classifier may be a classifier.pkl (older format); it is written as "
                             "classifier.npz in --out")
    parser.add_argument("--match-scores", nargs="+", default=None, metavar="CSV",
                        help="scores.csv of 'affinitomo match' (one, or one per tomogram): the template scores "
                             "join the latents as features of the classifier and the clustering")
    parser.add_argument("--options", default=None,
                        help="JSON object (inline or a file) of the cluster options; this step reads the "
                             "clustering ones: method (louvain|hdbscan|kmeans|gmm), space (latent|umap), "
                             "unknown (separate|joint), graph_neighbors, resolution, standardize, min_cluster_size, "
                             "min_samples, n_clusters, k_max, covariance_type, max_fit, seed; and the classifier "
                             "ones: classifier (knn|logistic), n_neighbors, C, open_set, quantile, folds. "
                             "align_* keys are accepted and left to 'affinitomo average'")


def run(args: argparse.Namespace) -> int:
    from affinitomo.cluster.pipeline import StageOptions, classify_particles
    from affinitomo.cluster.run_info import check_against_run
    from affinitomo.options import read_options

    options = StageOptions.from_dict(*read_options(args.options))
    if args.classifier is not None:
        check_against_run(args.classifier, "classifier", args.out)
    classify_particles(args.latents, args.embedding, args.particles, args.out, matrix_path=args.matrix,
                       options=options, classifier_path=args.classifier, match_scores=args.match_scores,
                       trust_pickle=args.trust_pickle)
    return 0
