# The embedded demo: pseudo-proteins, simulated tomograms, ground truth. No downloads.


rule simulate_demo:
    output:
        tomograms=demo_tomograms(),
        particles=DEMO / "particles.star",
        truth=DEMO / "truth.star",
        templates=directory(DEMO / "templates"),
        classes=DEMO / "classes.csv",
    log:
        LOGS / "simulate_demo.log",
    params:
        seed=config["demo"]["seed"],
        n=config["demo"]["n_tomograms"],
        out=DEMO,
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../../envs/affinitomo.yaml"
    shell:
        "affinitomo simulate demo --out {params.out} --seed {params.seed} "
        "--n-tomograms {params.n} > {log} 2>&1"
