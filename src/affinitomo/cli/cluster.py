"""``affinitomo cluster``: cluster latents, classify with an open-set 'unknown', write the results folder."""

from __future__ import annotations

import argparse

from affinitomo.cli.common import add_trust_pickle


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--latents", required=True, help="latents.npz from 'affinitomo encode'")
    parser.add_argument("--embedding", required=True, help="embedding.csv from 'affinitomo embed'")
    parser.add_argument("--particles", required=True, help="the extracted particle table (STAR)")
    parser.add_argument("--out", required=True, help="results folder")
    parser.add_argument("--truth", default=None, help="ground-truth table (same ids): writes metrics.json")
    parser.add_argument("--matrix", default=None,
                        help="similarity matrix CSV: gives the class order; writes latent_similarity.png")
    parser.add_argument("--training-log", default=None, help="training.csv: plotted as loss.png")
    parser.add_argument("--stack", nargs="+", default=None,
                        help="subtomos.npy, or one per tomogram in the order of the table's rows: writes "
                             "averages/<class>.mrc")
    parser.add_argument("--classifier", default=None, metavar="NPZ",
                        help="classifier.npz of an earlier run: classify with it instead of fitting "
                             "(no labelled particles needed; classes and their numbers come from it)")
    add_trust_pickle(parser, "--classifier may be a classifier.pkl (older format); it is written as "
                             "classifier.npz in --out")
    parser.add_argument("--checkpoint", default=None,
                        help="model.pt: recorded in run.json; with --stack, writes reconstructions.png "
                             "and traversals.png")
    parser.add_argument("--tomograms", nargs="+", default=None, metavar="PATH",
                        help="tomogram files or folders, recorded in run.json by file stem (for the viewer)")
    parser.add_argument("--particle-diameter", type=float, default=None, metavar="ANGSTROM",
                        help="particle diameter in Å, recorded in run.json (for the viewer)")
    parser.add_argument("--match-scores", nargs="+", default=None, metavar="CSV",
                        help="scores.csv of 'affinitomo match' (one, or one per tomogram): the template scores "
                             "join the latents as features of the classifier and the clustering")
    parser.add_argument("--match-poses", nargs="+", default=None, metavar="STAR",
                        help="particles.star of 'affinitomo match' (one, or one per tomogram): known-class particles "
                             "whose best template is their class take its pose (afmPoseSource)")
    parser.add_argument("--options", default=None,
                        help="JSON object (inline or a file). Clustering: method (louvain|hdbscan|kmeans|gmm), "
                             "space (latent|umap), unknown (separate|joint), graph_neighbors, resolution, standardize, "
                             "min_cluster_size, min_samples, n_clusters, k_max, covariance_type, max_fit, seed. Classifier: classifier (knn|logistic), "
                             "n_neighbors, C, open_set, quantile, folds")


def run(args: argparse.Namespace) -> int:
    from affinitomo.cluster.pipeline import StageOptions, run_cluster
    from affinitomo.cluster.run_info import check_against_run
    from affinitomo.options import read_options

    options = StageOptions.from_dict(*read_options(args.options))
    if args.classifier is not None:
        check_against_run(args.classifier, "classifier", args.out)
    run_cluster(args.latents, args.embedding, args.particles, args.out, truth_path=args.truth,
                matrix_path=args.matrix, training_log=args.training_log, stack_path=args.stack, options=options,
                classifier_path=args.classifier, checkpoint=args.checkpoint, tomograms=args.tomograms,
                particle_diameter=args.particle_diameter, match_scores=args.match_scores,
                match_poses=args.match_poses, trust_pickle=args.trust_pickle)
    return 0
