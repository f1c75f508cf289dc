# Clusters, known classes with an open-set "unknown", poses, metrics and plots.


rule cluster:
    input:
        latents=RESULTS / "encode" / "latents.npz",
        embedding=RESULTS / "embed" / "embedding.csv",
        particles=RESULTS / "extract" / "particles.star",
        matrix=RESULTS / "similarity" / "matrix.csv",
        training_log=RESULTS / "train" / "training.csv",
        stack=RESULTS / "extract" / "subtomos.npy",
        truth=[truth_table()] if truth_table() else [],
    output:
        particles=RESULTS / "particles.star",
        umap=report(RESULTS / "umap.png", caption="../report/umap.rst", category="Embedding"),
        loss=report(RESULTS / "loss.png", caption="../report/loss.rst", category="Training"),
        metrics=[RESULTS / "metrics.json"] if truth_table() else [],
    log:
        LOGS / "cluster.log",
    params:
        out=RESULTS,
        truth=optional_flag("--truth", truth_table()),
        options=options("cluster"),
    threads: workflow.cores
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/affinitomo.yaml"
    shell:
        "affinitomo cluster --latents {input.latents} --embedding {input.embedding} "
        "--particles {input.particles} --matrix {input.matrix} --stack {input.stack} "
        "--training-log {input.training_log} {params.truth} --out {params.out} "
        "--options {params.options:q} > {log} 2>&1"
