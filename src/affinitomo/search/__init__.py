"""SO(3) x shift searches of templates against maps, shared by the stages.

- :mod:`~affinitomo.search.pose`: one moving map against references (similarity matrix):
  global grid on maps binned by 2, compass refinement of the best distinct rotations.
- :mod:`~affinitomo.search.stack`: a stack of particles against templates under the missing
  wedge (match, averaging, template picking): coarse spectral search (:mod:`.coarse`), local
  refinement (:mod:`.refine`), the template's norm under the wedge (:mod:`.wedge_norm`).

Both use :mod:`affinitomo.density` for the grid (:func:`~affinitomo.density.so3.so3_grid`),
the scorer (:class:`~affinitomo.density.score.FourierScorer`) and binning
(:func:`~affinitomo.density.resample.bin2`). A layer: it imports only lower layers.
"""
