"""Simulated cryo-ET data with ground truth: the embedded demo and the template-based realistic path.

- :func:`affinitomo.simulate.demo.simulate_demo`: pseudo-protein phantoms, Fourier missing wedge, noise.
- :func:`affinitomo.simulate.templates.simulate_from_templates`: template maps, tilt series, CTF, noise, WBP.

Both write the layout of docs/architecture.md (stage 1) through
:func:`affinitomo.simulate.dataset.simulate_dataset`.
"""
