"""napari plugin: review particles, clusters and poses of an affinitomo results folder.

The npe2 manifest is ``napari.yaml`` in this package. Pure-Python building blocks
(no napari or Qt imports) live in ``results``, ``contrast``, ``features``,
``session``, ``selection``, ``particle_view`` and ``demo``; the napari side lives in
``layers``, ``_reader``, ``_sample``, ``_widget`` (the review), ``scatter`` (its UMAP panel) and
``qt_parts``.
"""
