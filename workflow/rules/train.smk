# Affinity-VAE training on the labelled subtomograms, with the similarity matrix as prior.


rule train:
    input:
        stacks=training_sources()["stacks"],
        tables=training_sources()["tables"],
        matrix=RESULTS / "similarity" / "matrix.csv",
    output:
        model=RESULTS / "train" / "model.pt",
        log_csv=RESULTS / "train" / "training.csv",
    log:
        LOGS / "train.log",
    benchmark:
        BENCHMARKS / "train.tsv",
    params:
        out=RESULTS / "train",
        options=options("train"),
        sources=training_source_flags,
        device=config["device"],
    threads: 8  # scaled down to --cores locally; --cpus-per-task on SLURM
    resources:
        mem_mb=8000,
        runtime=240,
    conda:
        "../../envs/affinitomo.yaml"
    shell:
        "affinitomo train {params.sources} "
        "--matrix {input.matrix} --out {params.out} --device {params.device} "
        "--options {params.options:q} > {log} 2>&1"
