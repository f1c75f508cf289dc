# Reference-free picking, one job per tomogram (config pick.enabled): tomograms in, picks out.


rule pick:
    input:
        tomogram=tomogram_of,
    output:
        particles=RESULTS / "pick" / "{tomo}.star",
    log:
        LOGS / "pick" / "{tomo}.log",
    benchmark:
        BENCHMARKS / "pick" / "{tomo}.tsv",
    params:
        diameter=config["pick"]["diameter"],
        threshold=optional_flag("--threshold", config["pick"]["threshold"]),
        max_count=optional_flag("--max-count", config["pick"]["max_count"]),
        pixel_size=optional_flag("--pixel-size", config["data"]["pixel_size"]),
        polarity=config["pick"]["polarity"],
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/affinitomo.yaml"
    shell:
        "affinitomo pick --tomograms {input.tomogram} --diameter {params.diameter} --polarity {params.polarity} "
        "{params.threshold} {params.max_count} {params.pixel_size} --ids-from-name "
        "--out {output.particles} > {log} 2>&1"
