"""affinitomo: cryo-ET subtomogram analysis with an Affinity-VAE.

Stages (each one CLI verb and one Snakemake rule): simulate, extract, similarity,
train, encode, embed, cluster, report. See README.md.
"""

__version__ = "0.1.0"
