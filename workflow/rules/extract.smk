# Subtomograms at the particle coordinates, one job (and one memory-mappable stack) per tomogram;
# with data.subtomograms, the subtomograms extracted elsewhere, one job per pseudo-tomogram.


if use_subtomograms():

    rule import_subtomograms:
        input:
            subtomograms=config["data"]["subtomograms"],
        output:
            stack=RESULTS / "extract" / "{tomo}" / "subtomos.npy",
            particles=RESULTS / "extract" / "{tomo}" / "particles.star",
        log:
            LOGS / "import_subtomograms" / "{tomo}.log",
        benchmark:
            BENCHMARKS / "import_subtomograms" / "{tomo}.tsv",
        params:
            out=lambda wildcards: RESULTS / "extract" / wildcards.tomo,
            box=config["extract"]["box"],
            resize=config["data"]["subtomogram_resize"],
            labels="--labels-from-names" if config["data"]["subtomogram_labels"] else "",
            pixel_size=optional_flag("--pixel-size", config["data"]["pixel_size"]),
            mask=optional_flag("--mask-radius", config["extract"]["mask_radius"]),
            normalise="" if config["extract"]["normalise"] else "--no-normalise",
            invert="--invert" if config["extract"]["invert"] else "",
        threads: 1
        resources:
            mem_mb=2000,
            runtime=60,
        conda:
            "../../envs/affinitomo.yaml"
        shell:
            "affinitomo import-subtomograms --subtomograms {input.subtomograms} --tomo {wildcards.tomo} "
            "--out {params.out} --box {params.box} --resize {params.resize} {params.labels} "
            "{params.pixel_size} {params.mask} {params.normalise} {params.invert} > {log} 2>&1"

else:

    rule extract:
        input:
            particles=particles_for,
            tomogram=tomogram_of,
        output:
            stack=RESULTS / "extract" / "{tomo}" / "subtomos.npy",
            particles=RESULTS / "extract" / "{tomo}" / "particles.star",
        log:
            LOGS / "extract" / "{tomo}.log",
        benchmark:
            BENCHMARKS / "extract" / "{tomo}.tsv",
        params:
            out=lambda wildcards: RESULTS / "extract" / wildcards.tomo,
            box=config["extract"]["box"],
            binning=config["extract"]["binning"],
            edge=config["extract"]["edge"],
            pixel_size=optional_flag("--pixel-size", config["data"]["pixel_size"]),
            coordinate_pixel_size=optional_flag("--coordinate-pixel-size", config["data"].get("coordinate_pixel_size")),
            mask=optional_flag("--mask-radius", config["extract"]["mask_radius"]),
            normalise="" if config["extract"]["normalise"] else "--no-normalise",
            invert="--invert" if config["extract"]["invert"] else "",
        threads: 1
        resources:
            mem_mb=2000,
            runtime=60,
        conda:
            "../../envs/affinitomo.yaml"
        shell:
            "affinitomo extract --particles {input.particles} --tomograms {input.tomogram} --tomo {wildcards.tomo} "
            "--out {params.out} --box {params.box} --binning {params.binning} --edge {params.edge} "
            "{params.pixel_size} {params.coordinate_pixel_size} {params.mask} {params.normalise} {params.invert} "
            "> {log} 2>&1"


rule gather_particles:
    """The extracted particles of every tomogram in one table (row order = the stacks in turn)."""
    input:
        tables=per_tomogram("extract", "{tomo}", "particles.star"),
    output:
        particles=RESULTS / "extract" / "particles.star",
    log:
        LOGS / "gather_particles.log",
    benchmark:
        BENCHMARKS / "gather_particles.tsv",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/affinitomo.yaml"
    shell:
        "affinitomo gather --particles {input.tables} --out-particles {output.particles} > {log} 2>&1"
