# Clusters, known classes with an open-set "unknown", poses, metrics and plots.


rule cluster:
    input:
        latents=RESULTS / "encode" / "latents.npz",
        embedding=RESULTS / "embed" / "embedding.csv",
        particles=RESULTS / "extract" / "particles.star",
        matrix=from_run("similarity", "matrix.csv"),
        training_log=from_run("train", "training.csv"),
        stacks=per_tomogram("extract", "{tomo}", "subtomos.npy"),
        checkpoint=from_run("train", "model.pt"),
        tomograms=tomograms(),
        truth=[truth_table()] if truth_table() else [],
        match_scores=match_outputs("scores.csv"),
        match_poses=match_outputs("particles.star"),
    output:
        particles=RESULTS / "particles.star",
        umap=report(RESULTS / "umap.png", caption="../report/umap.rst", category="Embedding"),
        loss=report(RESULTS / "loss.png", caption="../report/loss.rst", category="Training"),
        umap_cluster=report(RESULTS / "umap_cluster.png", caption="../report/umap_cluster.rst", category="Embedding"),
        umap_tomogram=report(RESULTS / "umap_tomogram.png", caption="../report/umap_tomogram.rst", category="Embedding"),
        latent_similarity=report(
            RESULTS / "latent_similarity.png", caption="../report/latent_similarity.rst", category="Model"
        ),
        reconstructions=report(RESULTS / "reconstructions.png", caption="../report/reconstructions.rst", category="Model"),
        traversals=report(RESULTS / "traversals.png", caption="../report/traversals.rst", category="Model"),
        run_info=RESULTS / "run.json",
        truth_outputs=(
            [
                RESULTS / "metrics.json",
                report(RESULTS / "confusion.png", caption="../report/confusion.rst", category="Classification"),
                report(RESULTS / "umap_truth.png", caption="../report/umap_truth.rst", category="Embedding"),
            ]
            if truth_table()
            else []
        ),
    log:
        LOGS / "cluster.log",
    benchmark:
        BENCHMARKS / "cluster.tsv",
    params:
        out=RESULTS,
        truth=optional_flag("--truth", truth_table()),
        options=cluster_options(),
        classifier=apply_flag("--classifier", "classifier.npz"),
        match=lambda wildcards, input: (
            f"--match-scores {input.match_scores} --match-poses {input.match_poses}" if input.match_scores else ""
        ),
    threads: 8  # scaled down to --cores locally; --cpus-per-task on SLURM
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/affinitomo.yaml"
    shell:
        "affinitomo cluster --latents {input.latents} --embedding {input.embedding} "
        "--particles {input.particles} --matrix {input.matrix} --stack {input.stacks} {params.classifier} "
        "--training-log {input.training_log} --checkpoint {input.checkpoint} "
        "--tomograms {input.tomograms} {params.truth} {params.match} --out {params.out} "
        "--options {params.options:q} > {log} 2>&1"
