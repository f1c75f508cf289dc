# Template matching at the particle positions, one job per tomogram: each particle's best score
# per template (in template-free mode, per class reference: the references rule), which the
# cluster stage uses as features next to the latents.


rule references:
    input:
        stacks=per_tomogram("extract", "{tomo}", "subtomos.npy"),
        tables=per_tomogram("extract", "{tomo}", "particles.star"),
    output:
        directory(RESULTS / "references"),
    log:
        LOGS / "references.log",
    benchmark:
        BENCHMARKS / "references.tsv"
    params:
        options=references_options(),
        device=config["device"],
    threads: 8  # scaled down to --cores locally; --cpus-per-task on SLURM
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/affinitomo.yaml"
    shell:
        "affinitomo references --stack {input.stacks} --particles {input.tables} --out {output} "
        "--options {params.options:q} --device {params.device} > {log} 2>&1"


rule match:
    input:
        stack=RESULTS / "extract" / "{tomo}" / "subtomos.npy",
        particles=RESULTS / "extract" / "{tomo}" / "particles.star",
        templates=match_templates() or [],
    output:
        particles=RESULTS / "match" / "{tomo}" / "particles.star",
        scores=RESULTS / "match" / "{tomo}" / "scores.csv",
    log:
        LOGS / "match" / "{tomo}.log",
    benchmark:
        BENCHMARKS / "match" / "{tomo}.tsv",
    params:
        out=lambda wildcards: RESULTS / "match" / wildcards.tomo,
        options=match_options(),
        device=config["device"],
    threads: 8  # scaled down to --cores locally; --cpus-per-task on SLURM
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/affinitomo.yaml"
    shell:
        "affinitomo match --stack {input.stack} --particles {input.particles} --templates {input.templates} "
        "--out {params.out} {params.options} --device {params.device} > {log} 2>&1"
