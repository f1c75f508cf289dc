# The protein-similarity matrix: computed from template maps, or a given CSV validated.


rule similarity:
    input:
        source=similarity_source(),
        particles=RESULTS / "extract" / "particles.star",
    output:
        matrix=RESULTS / "similarity" / "matrix.csv",
        plot=report(RESULTS / "similarity.png", caption="../report/similarity.rst", category="Similarity"),
    log:
        LOGS / "similarity.log",
    benchmark:
        BENCHMARKS / "similarity.tsv",
    params:
        mode="--matrix" if config["similarity"]["matrix"] else "--templates",
        score=config["similarity"]["score"],
        resolution=config["similarity"]["resolution"],
        classes=lambda wildcards, input: "" if use_picking() else f"--classes-from {input.particles}",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/affinitomo.yaml"
    shell:
        "affinitomo similarity {params.mode} {input.source} {params.classes} "
        "--score {params.score} --resolution {params.resolution} "
        "--out {output.matrix} --plot {output.plot} > {log} 2>&1"
