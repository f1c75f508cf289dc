# affinitomo: cryo-ET subtomograms -> Affinity-VAE -> UMAP -> classes and poses.
# Thin by design: configuration, validation, includes. Every rule calls one CLI verb.

from snakemake.utils import min_version, validate

min_version("8.0")


# config.yaml (the quick demo) is the config unless --configfile names others: a config file given
# on the command line is the whole config, the schema's defaults filling what it leaves out, so
# the demo's quick settings never leak into a run on other data.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"


wildcard_constraints:
    tomo=tomogram_constraint(),


include: "workflow/rules/simulate.smk"
include: "workflow/rules/copick.smk"
include: "workflow/rules/pick.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/similarity.smk"
include: "workflow/rules/match.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/encode.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/cluster.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
