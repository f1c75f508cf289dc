"""Apply a trained run to new tomograms, without retraining.

An earlier run's results folder holds everything needed: ``train/model.pt`` (encoder),
``embed/umap.npz`` (the map new particles land on), ``classifier.npz`` (known classes and the
open-set threshold), ``similarity/matrix.csv`` (class order) and ``train/training.csv``. A
classifier fitted on latents + template scores also needs the template folder the run matched
against: the new particles are matched (``match`` stage) before they are classified.
:func:`apply_run` checks all of them against each other first, then runs the same stage
functions as a full run: (pick ->) extract -> encode -> UMAP transform -> classify/cluster.
The results folder has the layout of a full run. A folder of an older run, with ``umap.pkl`` and
``classifier.pkl`` (pickles), is refused unless ``trust_pickle``: then they are read, and the new
results folder holds them as ``embed/umap.npz`` and ``classifier.npz``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from affinitomo.errors import InputError

if TYPE_CHECKING:
    from affinitomo.cluster.pipeline import StageOptions
    from affinitomo.match import MatchOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainedRun:
    """The files of an earlier run that classify new data."""

    checkpoint: Path
    umap: Path
    classifier: Path
    matrix: Path
    training_log: Path | None

    @classmethod
    def from_folder(cls, folder: str | Path) -> "TrainedRun":
        from affinitomo.cluster.classifier_file import NAME as CLASSIFIER_NAME
        from affinitomo.umap_file import NAME as UMAP_NAME

        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(folder, None, "the results folder of an earlier run (not found)")
        files = {"checkpoint": folder / "train" / "model.pt", "umap": _saved(folder / "embed" / UMAP_NAME),
                 "classifier": _saved(folder / CLASSIFIER_NAME), "matrix": folder / "similarity" / "matrix.csv"}
        for key, path in files.items():
            if not path.is_file():
                raise InputError(path, None, f"the earlier run's {key} file (not found)")
        log_csv = folder / "train" / "training.csv"
        return cls(**files, training_log=log_csv if log_csv.is_file() else None)


def _saved(path: Path) -> Path:
    """``path``, or the ``.pkl`` of the older pickle format beside it when only that is there (its
    loader refuses it unless trusted, with a message that says how to convert it)."""
    old = path.with_suffix(".pkl")
    return old if not path.exists() and old.is_file() else path


def check_trained_run(run: TrainedRun, device: str = "cpu", templates: str | Path | None = None,
                      trust_pickle: bool = False, out_dir: str | Path | None = None) -> tuple[int, list[str] | None]:
    """Load and cross-check model, classifier, matrix, UMAP (and templates); each file, once read,
    is checked against the SHA-256 that the run's run.json records for it
    (:func:`~affinitomo.cluster.run_info.check_against_run`; ``out_dir``: what is written, see there).

    Returns the model's box size and the templates whose scores the classifier uses (None: latents only).

    InputError (before any work) for a checkpoint or classifier of another version or not
    ours, a classifier whose class map differs from the model's or the matrix's, or a UMAP
    fitted on latents of another size; no ``templates`` (or other template names) for a classifier
    fitted with template scores; a pickle (older format) unless ``trust_pickle``.
    """
    from affinitomo.cluster.classifier_file import load_classifier
    from affinitomo.cluster.inputs import read_matrix
    from affinitomo.cluster.run_info import check_against_run
    from affinitomo.model.device import pick_device
    from affinitomo.model.loading import load_model
    from affinitomo.umap_file import read_umap

    model, ckpt = load_model(run.checkpoint, pick_device(device))
    check_against_run(run.checkpoint, "checkpoint", out_dir)
    latent = model.config.latent_dims
    names, _ = read_matrix(run.matrix)
    check_against_run(run.matrix, "matrix", out_dir)
    classifier = load_classifier(run.classifier, latent_dims=latent, matrix_names=names, matrix_path=run.matrix,
                                 trust_pickle=trust_pickle)
    check_against_run(run.classifier, "classifier", out_dir)
    trained_on = [str(c) for c in ckpt["classes"]]
    unknown_to_model = sorted(set(classifier["trained"]) - set(trained_on))
    if unknown_to_model:
        raise InputError(run.classifier, "classes", f"classes the model {run.checkpoint} was trained on "
                                                    f"({trained_on}); {unknown_to_model} are not")
    names = classifier["features"].score_names
    if names is not None:
        if templates is None:
            raise InputError(run.classifier, "features", f"the template folder it was fitted with ({names}: "
                                                         "--templates / similarity.templates)")
        from affinitomo.io.structures import structure_files

        given = sorted(p.stem for p in structure_files([Path(templates)]))
        if given != names:
            raise InputError(templates, None, f"the templates the classifier was fitted with: {names}; got {given}")
    read_umap(run.umap, latent_dims=latent, trust_pickle=trust_pickle)
    check_against_run(run.umap, "umap", out_dir)
    return int(model.box), names


def recorded_matching(run_dir: str | Path, templates: str | Path | None, options: "MatchOptions | None",
                      device: str) -> tuple[Path | None, "MatchOptions | None"]:
    """(templates, match options) that new particles are matched with: the given ones, else what the
    earlier run recorded (``match/<tomogram>/match.json``, :mod:`affinitomo.match.settings`: its search
    and CTF; its template folder, or the class references of a template-free run, ``references/``)."""
    from affinitomo.match.settings import read_settings, recorded_settings

    recorded = recorded_settings(run_dir)
    if options is None and recorded is not None:
        options = read_settings(recorded, device)
        log.info("matching as the earlier run did (%s): %s", recorded, options)
    elif options is None and (Path(run_dir) / "match").is_dir():
        log.warning("%s records no match settings (an older run): new particles are matched with the default "
                    "search and no CTF, which may not be how the run matched", Path(run_dir) / "match")
    if templates is None and (Path(run_dir) / "references").is_dir():
        templates = Path(run_dir) / "references"
    elif templates is None and recorded is not None:
        import json

        given = Path(json.loads(recorded.read_text()).get("templates") or "")
        templates = given if given.is_dir() else None
    return (None if templates is None else Path(templates)), options


def apply_run(run_dir: str | Path, tomograms: list[str | Path], out_dir: str | Path, *,
              particles: str | Path | None = None, pick_diameter: float | None = None,
              pixel_size: float | None = None, binning: int = 1, normalise: bool = True, invert: bool = False,
              mask_radius: float | None = None, edge: str = "pad", truth: str | Path | None = None,
              device: str = "auto", pick_options: dict | None = None, templates: str | Path | None = None,
              match_options: "MatchOptions | None" = None,
              cluster_options: "StageOptions | None" = None, trust_pickle: bool = False) -> dict:
    """Classify the particles of ``tomograms`` with the run in ``run_dir``; write ``out_dir``.

    Particles come from ``particles`` (a table) or, with ``pick_diameter`` (Å), from the
    reference-free picker. Extraction settings must be those the model was trained with.
    ``templates`` (a folder of maps): needed, and only used, when the classifier was fitted
    with template scores; ``match_options``: the search and CTF. Where not given, both are what
    the earlier run recorded (:func:`recorded_matching`).
    ``cluster_options``: the cluster stage's (default as ``affinitomo cluster``); give the earlier
    run's for the same treatment of unknown groups. ``trust_pickle``: the earlier run's UMAP and
    classifier may be pickles of the older format (read, and written in the new one).
    """
    from affinitomo.cluster.pipeline import run_cluster
    from affinitomo.embed import run_embed
    from affinitomo.encode import encode
    from affinitomo.extract import extract_subtomograms
    from affinitomo.io.particles import read_particles, write_particles
    from affinitomo.io.tomograms import find_tomograms, tomogram_shapes

    if (particles is None) == (pick_diameter is None):
        raise InputError("--particles", None, "either a particle table or --pick-diameter (not both)")
    run = TrainedRun.from_folder(run_dir)
    out_dir = Path(out_dir)
    templates, match_options = recorded_matching(run_dir, templates, match_options, device)
    box, score_names = check_trained_run(run, device, templates, trust_pickle, out_dir)
    files = find_tomograms(tomograms)
    if pick_diameter is not None:
        from affinitomo.pick import pick_tomograms

        table = pick_tomograms(list(files.values()), diameter_A=pick_diameter, pixel_size=pixel_size,
                               **(pick_options or {}))
        particles = write_particles(out_dir / "pick" / "particles.star", table)
    else:
        default = next(iter(files)) if len(files) == 1 else None
        table = read_particles(particles, pixel_size=pixel_size, tomogram_shapes=tomogram_shapes(files),
                               default_tomo=default)
        table = table[table["rlnTomoName"].astype(str).isin(files)].reset_index(drop=True)
        if table.empty:
            raise InputError(particles, "rlnTomoName", f"particles of the tomograms given ({sorted(files)[:10]})")
    extract_dir = out_dir / "extract"
    extract_subtomograms(table, files, box, extract_dir, binning=binning, normalise=normalise, invert=invert,
                         mask_radius=mask_radius, edge=edge, pixel_size=pixel_size)
    stack, extracted = extract_dir / "subtomos.npy", extract_dir / "particles.star"
    ids = read_particles(extracted)["afmParticleId"].to_numpy()
    latents = encode(run.checkpoint, stack, ids, out_dir / "encode" / "latents.npz", device=device)
    embedded = run_embed(latents, extracted, out_dir / "embed", umap_path=run.umap, trust_pickle=trust_pickle)
    scores = poses = None
    if score_names is not None:
        from affinitomo.match import match_particles

        match_particles(stack, extracted, templates, out_dir / "match", match_options, progress=False)
        scores, poses = out_dir / "match" / "scores.csv", out_dir / "match" / "particles.star"
    return run_cluster(latents, embedded["embedding"], extracted, out_dir, truth_path=truth, matrix_path=run.matrix,
                       training_log=run.training_log, stack_path=stack, classifier_path=run.classifier,
                       checkpoint=run.checkpoint, tomograms=list(files.values()), match_scores=scores,
                       match_poses=poses, options=cluster_options, trust_pickle=trust_pickle)
