"""``affinitomo simulate demo|templates|particles``: simulated data with ground truth.

``demo``: the embedded pseudo-protein demo (no downloads).
``templates``: tomograms from a folder of template maps, through a tilt series with CTF;
its realism options (:func:`add_realism_arguments`) make the particles, the tilt series and
the written templates depart from the maps (all off by default).
Both write DIR/tomograms/<tomo>.mrc, DIR/truth.star, DIR/particles.star,
DIR/templates/<class>.mrc, DIR/classes.csv and DIR/simulation.json.
``particles``: labelled training subtomograms from template maps, imaged like the
tomograms (DIR/subtomos.npy, DIR/particles.star, DIR/truth.star, DIR/simulation.json).

The imaging options (tilts, CTF, contrast, noise) are defined once, by
:func:`add_imaging_arguments`, and read back by :func:`imaging_from_args`; other
verbs that need to describe the imaging of tomograms reuse both (``match`` only the
CTF's: :func:`add_ctf_arguments`, :func:`ctf_from_args`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import asdict, fields

from affinitomo.density.ctf import CtfParameters
from affinitomo.errors import InputError
from affinitomo.simulate.demo import DEMO_BOX, DEMO_PER_CLASS, DEMO_SHAPE, DEMO_TOMOGRAMS, DEMO_VOXEL_SIZE
from affinitomo.simulate.imaging import DEFAULT_SNR, Imaging
from affinitomo.simulate.phantoms import DEFAULT_HELD_OUT
from affinitomo.simulate.realism import Realism
from affinitomo.simulate.templates import DEFAULT_TEMPLATE_BFACTOR, TEMPLATE_SOURCES

log = logging.getLogger(__name__)


def add_ctf_arguments(p: argparse.ArgumentParser, *, defocus: float | None) -> None:
    """The microscope's CTF options (read back by :func:`ctf_from_args`); ``defocus`` None: no CTF unless given."""
    default = "none" if defocus is None else f"{defocus:g}"
    p.add_argument("--defocus-um", type=float, default=defocus, help=f"underfocus in µm (default {default})")
    p.add_argument("--voltage-kv", type=float, default=300.0, help="accelerating voltage in kV (default 300)")
    p.add_argument("--cs-mm", type=float, default=2.7, help="spherical aberration in mm (default 2.7)")
    p.add_argument("--amplitude-contrast", type=float, default=0.07, help="amplitude contrast fraction (default 0.07)")
    p.add_argument("--phase-flip", action="store_true", help="phase-flipped projections (CTF correction) before reconstruction")


def ctf_from_args(args: argparse.Namespace) -> CtfParameters | None:
    """The :class:`CtfParameters` of :func:`add_ctf_arguments`'s options; None without a defocus."""
    if args.defocus_um is None:
        return None
    return CtfParameters(args.defocus_um, args.voltage_kv, args.cs_mm, args.amplitude_contrast, args.phase_flip)


def add_imaging_arguments(p: argparse.ArgumentParser, *, imaging: str = "tiltseries", contrast: str = "dark", snr: bool = True) -> None:
    """Options describing how tomograms are imaged (read back by :func:`imaging_from_args`)."""
    if snr:
        p.add_argument("--snr", type=float, default=DEFAULT_SNR, help=f"var(signal)/var(noise) in the particle boxes; 0 = no noise (default {DEFAULT_SNR})")
    p.add_argument("--imaging", choices=["wedge", "tiltseries"], default=imaging, help=f"Fourier missing-wedge mask, or tilt series + CTF + WBP (default {imaging})")
    p.add_argument("--tilt-min", type=float, default=-60.0, help="lowest tilt, degrees about Y (default -60)")
    p.add_argument("--tilt-max", type=float, default=60.0, help="highest tilt, degrees (default 60)")
    p.add_argument("--tilt-step", type=float, default=3.0, help="tilt step, degrees (tiltseries; default 3)")
    p.add_argument("--noise", choices=["gaussian", "poisson"], default="gaussian", help="noise on the projections (tiltseries; default gaussian)")
    add_ctf_arguments(p, defocus=3.0)
    p.add_argument("--no-ctf", action="store_true", help="no CTF on the projections")
    p.add_argument("--contrast", choices=["bright", "dark"], default=contrast, help=f"protein bright (positive) or dark (x -1, like real data); default {contrast}")


def imaging_from_args(args: argparse.Namespace, snr: float | None = None) -> Imaging:
    """The :class:`Imaging` of options added by :func:`add_imaging_arguments` (``snr`` overrides ``--snr``)."""
    return Imaging(
        mode=args.imaging,
        tilt_min=args.tilt_min,
        tilt_max=args.tilt_max,
        tilt_step=args.tilt_step,
        snr=snr if snr is not None else getattr(args, "snr", DEFAULT_SNR),
        noise=args.noise,
        ctf=not args.no_ctf,
        contrast=args.contrast,
        dose_symmetric=getattr(args, "dose_symmetric", Imaging.dose_symmetric),
        dose_per_tilt=getattr(args, "dose_per_tilt", Imaging.dose_per_tilt),
        dose_bfactor=getattr(args, "dose_bfactor", Imaging.dose_bfactor),
        **asdict(ctf_from_args(args)),
    )


def add_realism_arguments(p: argparse.ArgumentParser) -> None:
    """Departures of the specimen, the tilt series and the templates from the maps (read back by :func:`realism_from_args`)."""
    r, im = Realism(), Imaging()
    g = p.add_argument_group("realism", "departures from the ideal specimen and templates; each is off by default")
    g.add_argument("--deform-rms-A", type=float, default=r.deform_rms_A, help="per-particle smooth random deformation, RMS displacement in Å (default 0: rigid)")
    g.add_argument("--deform-length-A", type=float, default=r.deform_length_A, help=f"correlation length of the deformation field in Å (default {r.deform_length_A:g})")
    g.add_argument("--occupancy-min", type=float, default=r.occupancy_min, help="per-particle density scale drawn uniformly in [min, max] (default 1)")
    g.add_argument("--occupancy-max", type=float, default=r.occupancy_max, help="upper end of the density scale (default 1)")
    g.add_argument("--partner-fraction", type=float, default=r.partner_fraction, help="fraction of particles carrying a bound partner blob at their surface (default 0)")
    g.add_argument("--partner-scale", type=float, default=r.partner_scale, help=f"partner radius / particle radius (default {r.partner_scale:g})")
    g.add_argument("--missing-fraction", type=float, default=r.missing_fraction, help="fraction of particles missing a subunit (a masked-out region) (default 0)")
    g.add_argument("--missing-scale", type=float, default=r.missing_scale, help=f"missing region's radius / particle radius (default {r.missing_scale:g})")
    g.add_argument("--defocus-spread-um", type=float, default=r.defocus_spread_um, help="SD of each tomogram's true defocus around --defocus-um, which stays the stated value (default 0)")
    g.add_argument("--dose-symmetric", action="store_true", help="radiation damage along a dose-symmetric tilt order: B-factor attenuation growing with accumulated dose")
    g.add_argument("--dose-per-tilt", type=float, default=im.dose_per_tilt, help=f"with --dose-symmetric: e/Å² per tilt (default {im.dose_per_tilt:g})")
    g.add_argument("--dose-bfactor", type=float, default=im.dose_bfactor, help=f"with --dose-symmetric: Å² of B-factor per e/Å² accumulated (default {im.dose_bfactor:g})")
    g.add_argument("--template-source", choices=TEMPLATE_SOURCES, default="same", help="written templates: the maps (same, default), the maps low-passed by --template-bfactor, or densities from the models in --pdb")
    g.add_argument("--template-bfactor", type=float, default=DEFAULT_TEMPLATE_BFACTOR, help=f"with --template-source lowpass-bfactor: B-factor in Å² (default {DEFAULT_TEMPLATE_BFACTOR:g})")
    g.add_argument("--pdb", default=None, metavar="DIR", help="with --template-source pdb: folder of atomic models (.pdb/.cif) named as the maps")


def realism_from_args(args: argparse.Namespace) -> Realism:
    """The :class:`Realism` of :func:`add_realism_arguments`'s options."""
    return Realism(**{f.name: getattr(args, f.name) for f in fields(Realism)})


def _common(p: argparse.ArgumentParser, *, per_class: int | None, shape: tuple[int, int, int] | None, n_tomograms: int, imaging: str, contrast: str, held_out: list[str]) -> None:
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same data")
    p.add_argument("--n-tomograms", type=int, default=n_tomograms, help=f"number of tomograms (default {n_tomograms})")
    p.add_argument("--per-class", type=int, default=per_class, required=per_class is None, help="particles of each class per tomogram")
    p.add_argument("--shape", type=int, nargs=3, metavar=("Z", "Y", "X"), default=shape, required=shape is None, help="tomogram size in voxels")
    p.add_argument("--held-out", nargs="*", default=held_out, metavar="NAME", help="classes placed in the tomograms but given no template and no labels")
    p.add_argument("--labelled-fraction", type=float, default=0.5, help="fraction of each known class labelled in particles.star (default 0.5)")
    add_imaging_arguments(p, imaging=imaging, contrast=contrast)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _particles_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--templates", required=True, help="folder of template maps (.mrc), protein density positive")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--per-class", type=int, default=300, help="particles of each class (default 300)")
    p.add_argument("--box", type=int, default=32, help="box size in voxels, as extracted (default 32)")
    p.add_argument("--voxel-size", type=float, default=None, help="Å per voxel of the subtomograms (default: the templates' header voxel size)")
    p.add_argument("--template-voxel-size", type=float, default=None, help="Å per voxel of the maps when their headers lack it")
    noise = p.add_mutually_exclusive_group()
    noise.add_argument("--snr", type=float, default=None, help=f"var(signal)/var(noise) in the particle boxes; 0 = no noise (default {DEFAULT_SNR})")
    noise.add_argument("--snr-from", metavar="STACK.npy", default=None, help="estimate the SNR from extracted subtomograms (affinitomo extract's subtomos.npy)")
    p.add_argument("--radius", type=float, default=None, help="with --snr-from: particle radius in voxels; noise is measured outside it (default box/2: the corners)")
    add_imaging_arguments(p, imaging="tiltseries", contrast="dark", snr=False)
    p.add_argument("--no-normalise", dest="normalise", action="store_false", help="as extract: keep raw values (default: zero mean, unit std per subtomogram)")
    p.add_argument("--invert", action="store_true", help="as extract: negate the contrast (dark protein -> bright)")
    p.add_argument("--mask-radius", type=float, default=None, help="as extract: spherical mask radius in voxels for normalisation")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same data")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    demo = sub.add_parser("demo", help="embedded pseudo-protein demo, no downloads", description="Embedded pseudo-protein demo (10 classes, one held out).")
    _common(demo, per_class=DEMO_PER_CLASS, shape=DEMO_SHAPE, n_tomograms=DEMO_TOMOGRAMS, imaging="wedge", contrast="bright", held_out=[DEFAULT_HELD_OUT])
    demo.add_argument("--box", type=int, default=DEMO_BOX, help=f"template box in voxels (default {DEMO_BOX})")
    demo.add_argument("--voxel-size", type=float, default=DEMO_VOXEL_SIZE, help=f"Å per voxel (default {DEMO_VOXEL_SIZE:g})")
    tpl = sub.add_parser("templates", help="tomograms from a folder of template maps", description="Tomograms from template maps: tilt series, CTF, noise, WBP.")
    tpl.add_argument("--templates", required=True, help="folder of template maps (.mrc), protein density positive")
    _common(tpl, per_class=25, shape=(200, 512, 512), n_tomograms=1, imaging="tiltseries", contrast="dark", held_out=[])
    tpl.add_argument("--voxel-size", type=float, default=10.0, help="Å per voxel of the tomograms (default 10)")
    tpl.add_argument("--template-voxel-size", type=float, default=None, help="Å per voxel of the maps when their headers lack it")
    add_realism_arguments(tpl)
    par = sub.add_parser(
        "particles",
        help="labelled training subtomograms from template maps, imaged like the tomograms",
        description="Subtomograms of every template at random poses, with the tomograms' missing wedge, CTF, noise colour and SNR, normalised as extract.",
    )
    _particles_arguments(par)


def run(args: argparse.Namespace) -> int:
    if args.source == "particles":
        return _run_particles(args)
    common = dict(
        seed=args.seed,
        n_tomograms=args.n_tomograms,
        shape=tuple(args.shape),
        per_class=args.per_class,
        held_out=tuple(args.held_out or ()),
        labelled_fraction=args.labelled_fraction,
        voxel_size=args.voxel_size,
        imaging=imaging_from_args(args),
        progress=not args.no_progress,
    )
    if args.source == "demo":
        from affinitomo.simulate.demo import simulate_demo

        summary = simulate_demo(args.out, box=args.box, **common)
    else:
        from affinitomo.simulate.templates import simulate_from_templates

        if args.pdb is not None and args.template_source != "pdb":
            log.warning("--pdb is used only with --template-source pdb; ignored")
        summary = simulate_from_templates(
            args.templates,
            args.out,
            template_voxel_size=args.template_voxel_size,
            realism=realism_from_args(args),
            template_source=args.template_source,
            template_bfactor=args.template_bfactor,
            pdb=args.pdb,
            **common,
        )
    n = sum(t["n_particles"] for t in summary["tomograms"])
    log.info("wrote %d tomograms, %d particles (%d labelled) to %s in %.1f s", summary["n_tomograms"], n, summary["n_labelled"], args.out, summary["seconds"])
    return 0


def _run_particles(args: argparse.Namespace) -> int:
    from affinitomo.simulate.particles import simulate_particles
    from affinitomo.simulate.snr import estimate_snr
    from affinitomo.simulate.templates import templates_voxel_size

    snr = args.snr
    if args.snr_from is not None:
        stack = _open_stack(args.snr_from)
        try:
            snr = estimate_snr(stack, args.radius)
        except InputError as exc:
            raise InputError(args.snr_from, exc.field, exc.expected) from None
        log.info("SNR estimated from %s (%d subtomograms, radius %s): %.4g", args.snr_from, len(stack), args.radius or "box/2", snr)
    elif args.radius is not None:
        log.warning("--radius is used only with --snr-from; ignored")
    voxel_size = args.voxel_size if args.voxel_size is not None else templates_voxel_size(args.templates, args.template_voxel_size)
    table = simulate_particles(
        args.templates,
        args.out,
        per_class=args.per_class,
        box=args.box,
        voxel_size=voxel_size,
        imaging=imaging_from_args(args, snr=DEFAULT_SNR if snr is None else snr),
        seed=args.seed,
        normalise=args.normalise,
        invert=args.invert,
        mask_radius=args.mask_radius,
        template_voxel_size=args.template_voxel_size,
        progress=not args.no_progress,
    )
    log.info("wrote %d simulated subtomograms of %d classes to %s", len(table), table["afmClassName"].nunique(), args.out)
    return 0


def _open_stack(path: str):
    """A subtomogram stack ``.npy`` as a memory map, or :class:`InputError`."""
    import numpy as np

    try:
        return np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise InputError(path, None, "file not found") from None
    except (ValueError, OSError) as exc:
        raise InputError(path, None, f"a .npy stack of subtomograms (N, B, B, B): {exc}") from None
