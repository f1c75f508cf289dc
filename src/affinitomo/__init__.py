"""affinitomo: cryo-ET subtomogram analysis with an Affinity-VAE.

Stages, each one CLI verb (``affinitomo <verb>``) and one Snakemake rule: simulate, pick,
extract, similarity, match, train, encode, embed, cluster; ``gather`` joins per-tomogram
outputs, ``apply`` runs a trained run on new tomograms and ``view`` opens results in napari.
See README.md.
"""

__version__ = "0.1.0"
