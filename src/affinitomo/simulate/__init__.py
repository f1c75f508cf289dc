"""Simulated cryo-ET data with ground truth: the embedded demo, the template-based realistic path,
and labelled training subtomograms.

- :func:`affinitomo.simulate.demo.simulate_demo`: pseudo-protein phantoms, Fourier missing wedge, noise.
- :func:`affinitomo.simulate.templates.simulate_from_templates`: template maps, tilt series, CTF, noise, WBP;
  with :mod:`affinitomo.simulate.realism` the particles, the tomograms' defocus, the tilt series' dose
  and the written templates depart from the maps as real data do.
- :func:`affinitomo.simulate.particles.simulate_particles`: subtomograms of template maps at random
  poses, imaged like the tomograms (:mod:`affinitomo.simulate.transfer`), normalised as extraction.
- :func:`affinitomo.simulate.snr.estimate_snr`: the SNR of extracted subtomograms, in the same definition.

The first two write the layout of docs/architecture.md (stage 1) through
:func:`affinitomo.simulate.dataset.simulate_dataset`.
"""
