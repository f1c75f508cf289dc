# UMAP of the latents: fitted on the labelled particles, applied to all.


rule embed:
    input:
        latents=RESULTS / "encode" / "latents.npz",
        particles=RESULTS / "extract" / "particles.star",
    output:
        model=RESULTS / "embed" / "umap.pkl",
        embedding=RESULTS / "embed" / "embedding.csv",
    log:
        LOGS / "embed.log",
    params:
        out=RESULTS / "embed",
        options=options("embed"),
    threads: 8  # scaled down to --cores locally; --cpus-per-task on SLURM
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/affinitomo.yaml"
    shell:
        "affinitomo embed --latents {input.latents} --particles {input.particles} "
        "--out {params.out} --options {params.options:q} > {log} 2>&1"
