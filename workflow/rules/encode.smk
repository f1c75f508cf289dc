# Every particle through the trained encoder: latent means, variances and poses.


rule encode:
    input:
        model=RESULTS / "train" / "model.pt",
        stack=RESULTS / "extract" / "subtomos.npy",
        particles=RESULTS / "extract" / "particles.star",
    output:
        latents=RESULTS / "encode" / "latents.npz",
    log:
        LOGS / "encode.log",
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
