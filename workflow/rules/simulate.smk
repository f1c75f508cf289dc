# The embedded demo (pseudo-proteins) or a SHREC-like set from template maps; ground truth.


# Only when the run uses the demo: a run on data/demo's files as its own data (template_free.yaml,
# apply.from) must read them as they are, never simulate them again with other settings.
if use_demo():

    rule simulate_demo:
        output:
            tomograms=demo_tomograms(),
            particles=DEMO / "particles.star",
            truth=DEMO / "truth.star",
            templates=directory(DEMO / "templates"),
            classes=DEMO / "classes.csv",
        log:
            LOGS / "simulate_demo.log",
        benchmark:
            BENCHMARKS / "simulate_demo.tsv",
        params:
            source=demo_source_flags(),
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
            "affinitomo simulate {params.source} --out {params.out} --seed {params.seed} "
            "--n-tomograms {params.n} > {log} 2>&1"


rule simulate_training:
    """Labelled training particles simulated from the templates with the tomograms' imaging."""
    input:
        templates=templates_dir() or [],
        stack=per_tomogram("extract", "{tomo}", "subtomos.npy")[:1],  # noise level estimated from here
    output:
        stack=RESULTS / "simulated" / "subtomos.npy",
        particles=RESULTS / "simulated" / "particles.star",
    log:
        LOGS / "simulate_training.log",
    benchmark:
        BENCHMARKS / "simulate_training.tsv",
    params:
        out=RESULTS / "simulated",
        per_class=config["training_data"]["simulated_per_class"],
        snr=snr_option(),
        imaging=imaging_options(),
        box=config["extract"]["box"],
        seed=config["training_data"]["seed"],
        invert="--invert" if config["extract"]["invert"] else "",
        mask=optional_flag("--mask-radius", config["extract"]["mask_radius"]),
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/affinitomo.yaml"
    shell:
        "affinitomo simulate particles --templates {input.templates} --out {params.out} "
        "--per-class {params.per_class} --box {params.box} {params.snr} {params.imaging} "
        "--seed {params.seed} {params.invert} {params.mask} > {log} 2>&1"
