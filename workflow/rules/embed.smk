# UMAP of the latents: fitted on the labelled particles, applied to all (apply mode: the
# earlier run's UMAP, transform only, so the new particles land on its map).


rule embed:
    input:
        latents=RESULTS / "encode" / "latents.npz",
        particles=RESULTS / "extract" / "particles.star",
    output:
        model=RESULTS / "embed" / "umap.npz",
        embedding=RESULTS / "embed" / "embedding.csv",
    log:
        LOGS / "embed.log",
    benchmark:
        BENCHMARKS / "embed.tsv",
    params:
        out=RESULTS / "embed",
        options=options("embed"),
        umap=apply_flag("--umap", "embed", "umap.npz"),
    threads: 8  # scaled down to --cores locally; --cpus-per-task on SLURM
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/affinitomo.yaml"
    shell:
        "affinitomo embed --latents {input.latents} --particles {input.particles} "
        "--out {params.out} --options {params.options:q} {params.umap} > {log} 2>&1"
