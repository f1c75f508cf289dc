# Input functions and paths shared by the rules, and the config checks run when the workflow is
# parsed (duplicate keys; the train, embed and cluster sections, by the parsers of their verbs).

import json
import re
from pathlib import Path

from affinitomo.errors import InputError
from affinitomo.io.tomograms import find_tomograms
from affinitomo.options import read_config_file


def config_files() -> list[str]:
    """The config files this run reads (--configfile, else config.yaml)."""
    return [str(p) for p in workflow.configfiles]


def check_config_files() -> None:
    """Each config file read again with a loader that refuses a key given twice (Snakemake's
    keeps the last value silently); InputError naming the file and the key."""
    for path in config_files():
        read_config_file(path)


def section_options(section: str) -> None:
    """Check config ``section`` (train, embed, cluster) with the parser of its verb's --options, so a
    typo stops the workflow when it is parsed, before any job runs; InputError naming section.key."""
    from affinitomo.cluster.pipeline import StageOptions
    from affinitomo.embed import EmbedOptions
    from affinitomo.model.train_config import config_from_dict

    parse = {"train": config_from_dict, "embed": EmbedOptions.from_dict, "cluster": StageOptions.from_dict}[section]
    values = json.loads(cluster_options()) if section == "cluster" else config[section]
    source = ", ".join(config_files())
    try:
        parse(values, source)
    except InputError as exc:
        raise InputError(source, f"{section}.{exc.field}" if exc.field else section, exc.expected) from None

RESULTS = Path(config["results"])
LOGS = RESULTS / "logs"
BENCHMARKS = RESULTS / "benchmarks"  # one Snakemake benchmark TSV per job: wall time, max RSS (benchmarks/rule_table.py)
DEMO = Path(config["demo"]["out"])
APPLY = Path(config["apply"]["from"]) if config["apply"]["from"] else None  # an earlier run's results folder


def use_demo() -> bool:
    """True when the run uses the embedded demo: neither particles nor tomograms of the lab's own."""
    return (config["data"]["particles"] is None and not config["data"]["tomograms"] and not use_subtomograms()
            and not use_copick())


def use_subtomograms() -> bool:
    """Subtomograms extracted elsewhere (config data.subtomograms) stand in for particles + tomograms:
    the import_subtomograms rule writes results/extract/<pseudo-tomogram>/ in place of extraction."""
    if config["data"]["subtomograms"] is None:
        return False
    clash = [f"data.{k}" for k in ("particles", "tomograms") if config["data"][k]]
    clash += ["pick.enabled"] if config["pick"]["enabled"] else []
    clash += ["copick.config"] if config.get("copick", {}).get("config") else []
    if clash:
        raise ValueError(f"config.yaml: data.subtomograms: in place of {' and '.join(clash)} (extracted "
                         "subtomograms need neither tomograms nor particles); set one or the other")
    return True


_PSEUDO_TOMOGRAMS: dict[str, list[str]] = {}


def subtomogram_names() -> list[str]:
    """The pseudo-tomograms of config data.subtomograms (rlnTomoName, else the STAR's stem or the folder's name)."""
    from affinitomo.subtomogram_import import pseudo_tomograms

    source = config["data"]["subtomograms"]
    if source not in _PSEUDO_TOMOGRAMS:
        try:
            _PSEUDO_TOMOGRAMS[source] = pseudo_tomograms(source)
        except InputError as exc:
            raise ValueError(f"config.yaml: data.subtomograms: {exc}") from None
    return _PSEUDO_TOMOGRAMS[source]


def use_copick() -> bool:
    """Particles and tomograms come from a copick project (config copick.config; rule copick_import)."""
    if config["copick"]["config"] is None:
        return False
    clash = [f"data.{k}" for k in ("particles", "tomograms", "subtomograms") if config["data"].get(k)]
    clash += ["pick.enabled"] if config["pick"]["enabled"] else []
    if clash:
        raise ValueError(f"config.yaml: copick.config: in place of {' and '.join(clash)} (the project gives the "
                         "particles and the tomograms); set one or the other")
    if config["copick"]["voxel_spacing"] is None:
        raise ValueError("config.yaml: copick.voxel_spacing: the voxel spacing (Å) of the project's tomograms to use")
    return True


_COPICK_RUNS: list[str] = []


def copick_runs() -> list[str]:
    """The copick runs read (those with picks of copick.objects), checked against the project once."""
    from affinitomo.io.copick_project import plan_import

    if not _COPICK_RUNS:
        c = config["copick"]
        try:
            plan = plan_import(c["config"], objects=c["objects"] or None, user_id=c["user_id"],
                               session_id=c["session_id"], runs=c["runs"] or None,
                               voxel_spacing=c["voxel_spacing"], tomo_type=c["tomo_type"])
        except InputError as exc:
            raise ValueError(f"config.yaml: copick: {exc}") from None
        _COPICK_RUNS.extend(plan.runs)
    return list(_COPICK_RUNS)


def copick_import_flags() -> str:
    """`affinitomo copick import` options from config copick (the runs as checked when parsed)."""
    c = config["copick"]
    flags = [f"--config {c['config']}", "--runs " + " ".join(copick_runs()),
             f"--voxel-spacing {c['voxel_spacing']}", f"--tomo-type {c['tomo_type']}"]
    if c["objects"]:
        flags.append("--object " + " ".join(c["objects"]))
    flags += [f"--{key} {c[key + '_id']}" for key in ("user", "session") if c[key + "_id"] is not None]
    return " ".join(flags)


def demo_tomograms() -> list[str]:
    n = config["demo"]["n_tomograms"]
    return [str(DEMO / "tomograms" / f"tomo{i + 1:02d}.mrc") for i in range(n)]


def demo_source_flags() -> str:
    """`simulate demo` (procedural pseudo-proteins) or `simulate templates` (from maps), with the demo's size."""
    demo = config["demo"]
    flags = []
    if demo["per_class"] is not None:
        flags.append(f"--per-class {demo['per_class']}")
    if demo["shape"] is not None:
        flags.append("--shape " + " ".join(str(n) for n in demo["shape"]))
    if demo["templates"] is None:
        return " ".join(["demo", *flags])
    held_out = " ".join(demo["held_out"])
    flags += [f"--snr {demo['snr']}", imaging_options()] + ([f"--held-out {held_out}"] if held_out else [])
    flags += [cli_flag(key, value) for key, value in demo["realism"].items() if value not in (False, None)]
    return " ".join([f"templates --templates {demo['templates']}", *flags])


def cli_flag(key: str, value) -> str:
    """A config key and value as a verb's option: deform_rms_A: 5 -> '--deform-rms-A 5', true -> the bare flag."""
    flag = "--" + key.replace("_", "-")
    return flag if value is True else f"{flag} {value}"


def tomogram_files() -> dict[str, str]:
    """Tomogram name (file stem) -> file: the demo's, or config data.tomograms (files or folders);
    none with data.subtomograms."""
    if use_subtomograms():
        return {}
    if use_copick():  # tomogram references, written by the copick_import rule
        return {name: str(RESULTS / "copick" / "tomograms" / f"{name}.copick") for name in copick_runs()}
    if use_demo():
        return {Path(p).stem: p for p in demo_tomograms()}
    given = config["data"]["tomograms"]
    if not given:
        raise ValueError("config.yaml: data.tomograms: at least one tomogram file or folder")
    try:
        return {name: str(path) for name, path in find_tomograms(given).items()}
    except InputError as exc:
        raise ValueError(f"config.yaml: data.tomograms: {exc}") from None


def tomograms() -> list[str]:
    """Tomogram files, in the order in which per-tomogram outputs are gathered."""
    return list(tomogram_files().values())


def tomogram_names() -> list[str]:
    """The {tomo} wildcard's values: tomogram names, or the pseudo-tomograms of data.subtomograms."""
    return subtomogram_names() if use_subtomograms() else list(tomogram_files())


def tomogram_constraint() -> str:
    """The {tomo} wildcard matches exactly the configured tomogram names."""
    return "|".join(re.escape(name) for name in tomogram_names())


def tomogram_of(wildcards) -> str:
    return tomogram_files()[wildcards.tomo]


def use_picking() -> bool:
    """Particles come from the reference-free picker, one job per tomogram."""
    if config["pick"]["enabled"] and config["pick"]["diameter"] is None:
        raise ValueError("config.yaml: pick.diameter: the particle diameter in Å (needed with pick.enabled)")
    return bool(config["pick"]["enabled"])


def particles_table() -> str:
    if use_copick():
        return str(RESULTS / "copick" / "particles.star")
    if use_demo():
        return str(DEMO / "particles.star")
    if config["data"]["particles"] is None:
        raise ValueError("config.yaml: data.particles: a particle table for data.tomograms, or pick.enabled: true")
    return config["data"]["particles"]


def particles_for(wildcards) -> str:
    """The particle table extraction reads for one tomogram."""
    return str(RESULTS / "pick" / f"{wildcards.tomo}.star") if use_picking() else particles_table()


def per_tomogram(*parts: str) -> list[str]:
    """RESULTS/<parts with {tomo}> for every tomogram, in gathering order."""
    return [str(RESULTS.joinpath(*parts)).format(tomo=name) for name in tomogram_names()]


def truth_table() -> str | None:
    """Ground truth for metrics.json; none with picking (picks have other ids than the truth)."""
    if use_picking():
        return None
    return str(DEMO / "truth.star") if use_demo() else config["data"]["truth"]


def from_run(*parts: str) -> str:
    """A file of this run's results, or of the applied earlier run (apply mode)."""
    return str((APPLY or RESULTS).joinpath(*parts))


def apply_flag(flag: str, *parts: str) -> str:
    """'--flag <earlier run>/<parts>' in apply mode, else ''."""
    return f"{flag} {APPLY.joinpath(*parts)}" if APPLY else ""


def templates_dir() -> str | None:
    return str(DEMO / "templates") if use_demo() else config["similarity"]["templates"]


def use_references() -> bool:
    """Template-free mode: class references from the labelled particles stand in for templates
    (config references.enabled, match.enabled). In apply mode: the earlier run's references."""
    if APPLY is not None:
        return (APPLY / "references").is_dir() and templates_dir() is None
    return config["references"]["enabled"] and config["match"]["enabled"] and templates_dir() is None


def match_templates() -> str | None:
    """What the match stage matches against: the templates, else the class references, else nothing."""
    if use_references():
        return from_run("references")
    return templates_dir()


def use_matching() -> bool:
    """Matching at the particles (config match.enabled) whenever there are templates or class references.

    In apply mode: exactly when the earlier run matched (its classifier needs the scores).
    """
    if APPLY is not None:
        if (APPLY / "match").is_dir() and match_templates() is None:
            raise ValueError(
                f"config.yaml: similarity.templates: the template folder the run in {APPLY} matched against "
                "(its classifier uses template scores)"
            )
        return (APPLY / "match").is_dir()
    return config["match"]["enabled"] and match_templates() is not None


#: cluster keys that set the reference-free alignment, which the unknown groups and the class references share
ALIGNMENT_KEYS = ("align_starts", "align_rounds", "align_max_particles", "align_resolution", "align_mask",
                  "align_wedge", "align_no_wedge", "seed")


def references_options() -> str:
    """`affinitomo references` options: config references' min_particles, and the cluster section's
    reference-free alignment (the tilt range's missing wedge unless given)."""
    cluster = json.loads(cluster_options())
    values = {"min_particles": config["references"]["min_particles"]}
    values.update({k: cluster[k] for k in ALIGNMENT_KEYS if k in cluster})
    return json.dumps(values, sort_keys=True)


def match_options() -> str:
    """`affinitomo match` search options from config match and the imaging's tilt range; the CTF on
    templates only (class references were made from the data and carry it). In apply mode: the
    settings the earlier run recorded (match.json), so new particles are matched as its were."""
    if APPLY is not None:
        from affinitomo.match.settings import recorded_settings

        recorded = recorded_settings(APPLY)
        if recorded is not None:
            return f"--settings {recorded}"
    m, im = config["match"], config["imaging"]
    flags = [f"--lowpass-A {m['lowpass']}"]
    if m["angular_step"] is not None:
        flags.append(f"--angular-step {m['angular_step']}")
    flags.append(f"--wedge {im['tilt_min']} {im['tilt_max']}" if m["wedge"] else "--no-wedge")
    if im["model"] == "tiltseries" and im["ctf"] and not use_references():
        flags.append(ctf_flags())
    return " ".join(flags)


def match_outputs(name: str) -> list[str]:
    """Per-tomogram outputs of the match rule (scores.csv, particles.star), when matching."""
    return per_tomogram("match", "{tomo}", name) if use_matching() else []


def similarity_source() -> str:
    """The given matrix CSV, or the templates folder to compute it from."""
    if APPLY:
        return from_run("similarity", "matrix.csv")
    source = config["similarity"]["matrix"] or templates_dir()
    if source is None:
        raise ValueError(
            "config.yaml: similarity: set 'matrix' (a similarity CSV) or 'templates' (a folder of maps)"
        )
    return source


def options(section: str) -> str:
    """A config section as JSON, for a verb's --options (changes trigger a rerun)."""
    return json.dumps(config[section], sort_keys=True)


def cluster_options(step: str = "all") -> str:
    """config cluster as JSON, with the imaging's tilt range as the alignment's missing wedge unless given,
    and in template-free mode ``latents: false`` unless given (README, "Template-free mode"). ``step``: "classify" leaves out the align_* keys (read by `affinitomo average`
    only), "average" keeps only them and seed, so that an option reruns only the steps that read it."""
    if step != "all":
        values = json.loads(cluster_options())
        keep = (lambda k: not k.startswith("align_")) if step == "classify" else (
            lambda k: k.startswith("align_") or k == "seed")
        return json.dumps({k: v for k, v in values.items() if keep(k)}, sort_keys=True)
    values = dict(config["cluster"])
    if use_references() and use_matching():  # template-free: classify and group on the class references'
        values.setdefault("latents", False)  # scores alone (docs/benchmarks.md, "Ablation")
    if "align_wedge" not in values and not values.get("align_no_wedge"):
        values["align_wedge"] = [config["imaging"]["tilt_min"], config["imaging"]["tilt_max"]]
    return json.dumps(values, sort_keys=True)


def optional_flag(flag: str, value) -> str:
    """'--flag value' when value is set, else ''."""
    return "" if value is None else f"{flag} {value}"


def use_simulated() -> bool:
    """Train on particles simulated from the templates too (needs templates)."""
    return APPLY is None and config["training_data"]["simulated_per_class"] > 0 and templates_dir() is not None


def training_sources() -> dict[str, list[str]]:
    """Stacks and tables that train the model: the extracted particles, and simulated ones."""
    simulated = [str(RESULTS / "simulated" / "{}")] if use_simulated() else []
    return {
        "stacks": per_tomogram("extract", "{tomo}", "subtomos.npy") + [s.format("subtomos.npy") for s in simulated],
        "tables": per_tomogram("extract", "{tomo}", "particles.star") + [s.format("particles.star") for s in simulated],
    }


def training_source_flags(wildcards, input) -> str:
    return " ".join(f"--stack {s} --particles {p}" for s, p in zip(input.stacks, input.tables))


def snr_option() -> str:
    snr = config["training_data"]["snr"]
    return f"--snr-from {per_tomogram('extract', '{tomo}', 'subtomos.npy')[0]}" if snr is None else f"--snr {snr}"


def imaging_options() -> str:
    """The tomograms' imaging, as `affinitomo simulate` options."""
    im = config["imaging"]
    flags = [
        f"--imaging {im['model']}",
        f"--tilt-min {im['tilt_min']} --tilt-max {im['tilt_max']} --tilt-step {im['tilt_step']}",
        f"--contrast {im['contrast']}",
    ]
    flags.append(ctf_flags() if im["ctf"] else "--no-ctf")
    return " ".join(flags)


def ctf_flags() -> str:
    """The tomograms' CTF from config imaging, as the options of `affinitomo simulate` and `match`."""
    im = config["imaging"]
    flags = (f"--defocus-um {im['defocus_um']} --voltage-kv {im['voltage_kv']} "
             f"--cs-mm {im['cs_mm']} --amplitude-contrast {im['amplitude_contrast']}")
    return flags + (" --phase-flip" if im["phase_flip"] else "")


def final_outputs() -> list[str]:
    outs = [RESULTS / "particles.star", RESULTS / "umap.png", RESULTS / "loss.png", RESULTS / "run.json"]
    if APPLY is None:
        outs.append(RESULTS / "similarity.png")
    if truth_table() is not None:
        outs.append(RESULTS / "metrics.json")
    if use_copick() and config["copick"]["export"]:
        outs.append(RESULTS / "copick" / "export.json")
    return [str(p) for p in outs]


# Checked when the workflow is parsed: duplicate keys, and the options sections of the verbs.
check_config_files()
for _section in ("train", "embed", "cluster"):
    section_options(_section)
