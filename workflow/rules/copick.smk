# A copick project as the data (config copick.config): its picks and tomograms in, results back out as picks.


if use_copick():

    rule copick_import:
        """Picks of copick.objects -> the particle table; one tomogram reference per run (read lazily)."""
        input:
            config=ancient(config["copick"]["config"]),  # export adds objects to it: no rerun for that
        output:
            particles=RESULTS / "copick" / "particles.star",
            tomograms=[RESULTS / "copick" / "tomograms" / f"{name}.copick" for name in copick_runs()],
        log:
            LOGS / "copick_import.log",
        benchmark:
            BENCHMARKS / "copick_import.tsv",
        params:
            out=RESULTS / "copick",
            flags=copick_import_flags(),
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        conda:
            "../../envs/affinitomo.yaml"
        shell:
            "affinitomo copick import {params.flags} --out {params.out} > {log} 2>&1"

    if config["copick"]["export"]:

        rule copick_export:
            """The results (classes and unknown groups) written into the project as picks of user affinitomo."""
            input:
                particles=RESULTS / "particles.star",
                config=ancient(config["copick"]["config"]),
            output:
                summary=RESULTS / "copick" / "export.json",
            log:
                LOGS / "copick_export.log",
            benchmark:
                BENCHMARKS / "copick_export.tsv",
            params:
                session=config["copick"]["export_session"],
            threads: 1
            resources:
                mem_mb=2000,
                runtime=30,
            conda:
                "../../envs/affinitomo.yaml"
            shell:
                "affinitomo copick export --config {input.config} --particles {input.particles} "
                "--session {params.session:q} --summary {output.summary} > {log} 2>&1"
