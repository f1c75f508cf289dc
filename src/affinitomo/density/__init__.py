"""Density operations shared by the stages: scores, SO(3) grids, filters, masks, resampling, the CTF.

A layer: it imports the foundations (errors, geometry), :mod:`affinitomo.io` (template files) and itself.
"""
