# The cluster stage in three steps, so that an option reruns only the steps after it:
# cluster (classify: open-set classes and groups) -> average (3-D alignment of the groups, poses,
# particles.star, averages) -> report (metrics, plots, run.json).


rule cluster:
    input:
        latents=RESULTS / "encode" / "latents.npz",
        embedding=RESULTS / "embed" / "embedding.csv",
        particles=RESULTS / "extract" / "particles.star",
        matrix=from_run("similarity", "matrix.csv"),
        match_scores=match_outputs("scores.csv"),
    output:
        classified=RESULTS / "cluster" / "classified.npz",
        info=RESULTS / "cluster" / "classified.json",
    log:
        LOGS / "cluster.log",
    benchmark:
        BENCHMARKS / "cluster.tsv"
    params:
        out=RESULTS,
        options=cluster_options("classify"),
        classifier=apply_flag("--classifier", "classifier.npz"),
        match=lambda wildcards, input: f"--match-scores {input.match_scores}" if input.match_scores else "",
    threads: 8  # scaled down to --cores locally; --cpus-per-task on SLURM
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/affinitomo.yaml"
    shell:
        "affinitomo cluster --latents {input.latents} --embedding {input.embedding} "
        "--particles {input.particles} --matrix {input.matrix} {params.classifier} {params.match} "
        "--out {params.out} --options {params.options:q} > {log} 2>&1"


rule average:
    input:
        latents=RESULTS / "encode" / "latents.npz",
        particles=RESULTS / "extract" / "particles.star",
        classified=rules.cluster.output.classified,
        info=rules.cluster.output.info,
        stacks=per_tomogram("extract", "{tomo}", "subtomos.npy"),
        match_poses=match_outputs("particles.star"),
    output:
        particles=RESULTS / "particles.star",
        classes=RESULTS / "classes.csv",
        poses=RESULTS / "average" / "poses.npz",
        info=RESULTS / "average" / "average.json",
    log:
        LOGS / "average.log",
    benchmark:
        BENCHMARKS / "average.tsv"
    params:
        out=RESULTS,
        options=cluster_options("average"),
        match=lambda wildcards, input: f"--match-poses {input.match_poses}" if input.match_poses else "",
    threads: 8
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../../envs/affinitomo.yaml"
    shell:
        "affinitomo average --latents {input.latents} --particles {input.particles} --stack {input.stacks} "
        "{params.match} --out {params.out} --options {params.options:q} > {log} 2>&1"


rule report:
    input:
        latents=RESULTS / "encode" / "latents.npz",
        embedding=RESULTS / "embed" / "embedding.csv",
        particles=RESULTS / "extract" / "particles.star",
        classified=rules.cluster.output.classified,
        poses=rules.average.output.poses,
        results=rules.average.output.particles,
        matrix=from_run("similarity", "matrix.csv"),
        training_log=from_run("train", "training.csv"),
        stacks=per_tomogram("extract", "{tomo}", "subtomos.npy"),
        checkpoint=from_run("train", "model.pt"),
        tomograms=tomograms(),
        truth=[truth_table()] if truth_table() else [],
    output:
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
        LOGS / "report.log",
    benchmark:
        BENCHMARKS / "report.tsv"
    params:
        out=RESULTS,
        truth=optional_flag("--truth", truth_table()),
        tomograms=lambda wildcards, input: f"--tomograms {input.tomograms}" if input.tomograms else "",
    threads: 2
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../../envs/affinitomo.yaml"
    shell:
        "affinitomo report --latents {input.latents} --embedding {input.embedding} "
        "--particles {input.particles} --matrix {input.matrix} --stack {input.stacks} "
        "--training-log {input.training_log} --checkpoint {input.checkpoint} "
        "{params.tomograms} {params.truth} --out {params.out} > {log} 2>&1"
