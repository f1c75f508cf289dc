# Every particle through the trained encoder, one job per tomogram; then gathered.


rule encode:
    input:
        model=from_run("train", "model.pt"),
        stack=RESULTS / "extract" / "{tomo}" / "subtomos.npy",
        particles=RESULTS / "extract" / "{tomo}" / "particles.star",
    output:
        latents=RESULTS / "encode" / "{tomo}" / "latents.npz",
    log:
        LOGS / "encode" / "{tomo}.log",
    benchmark:
        BENCHMARKS / "encode" / "{tomo}.tsv",
    params:
        device=config["device"],
    threads: 8  # scaled down to --cores locally; --cpus-per-task on SLURM
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/affinitomo.yaml"
    shell:
        "affinitomo encode --checkpoint {input.model} --stack {input.stack} "
        "--particles {input.particles} --out {output.latents} --device {params.device} > {log} 2>&1"


rule gather_latents:
    """Latents of every tomogram in one file, in the gathered table's order."""
    input:
        tables=per_tomogram("extract", "{tomo}", "particles.star"),
        latents=per_tomogram("encode", "{tomo}", "latents.npz"),
    output:
        latents=RESULTS / "encode" / "latents.npz",
    log:
        LOGS / "gather_latents.log",
    benchmark:
        BENCHMARKS / "gather_latents.tsv",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        "../../envs/affinitomo.yaml"
    shell:
        "affinitomo gather --particles {input.tables} --latents {input.latents} "
        "--out-latents {output.latents} > {log} 2>&1"
