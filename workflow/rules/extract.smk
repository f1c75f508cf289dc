# Subtomograms at the particle coordinates, into one memory-mappable stack.


rule extract:
    input:
        particles=particles_table(),
        tomograms=tomograms(),
    output:
        stack=RESULTS / "extract" / "subtomos.npy",
        particles=RESULTS / "extract" / "particles.star",
    log:
        LOGS / "extract.log",
    params:
        out=RESULTS / "extract",
        box=config["extract"]["box"],
        binning=config["extract"]["binning"],
        edge=config["extract"]["edge"],
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
        "affinitomo extract --particles {input.particles} --tomograms {input.tomograms} "
        "--out {params.out} --box {params.box} --binning {params.binning} --edge {params.edge} "
        "{params.pixel_size} {params.mask} {params.normalise} {params.invert} > {log} 2>&1"
