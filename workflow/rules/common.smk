# Input functions and paths shared by the rules. No computation here.

import json
from pathlib import Path

RESULTS = Path(config["results"])
LOGS = RESULTS / "logs"
DEMO = Path(config["demo"]["out"])


def use_demo() -> bool:
    """True when the run uses the embedded demo instead of the lab's own files."""
    return config["data"]["particles"] is None


def demo_tomograms() -> list[str]:
    n = config["demo"]["n_tomograms"]
    return [str(DEMO / "tomograms" / f"tomo{i + 1:02d}.mrc") for i in range(n)]


def demo_source_flags() -> str:
    """`simulate demo` (procedural pseudo-proteins) or `simulate templates` (from maps)."""
    demo = config["demo"]
    if demo["templates"] is None:
        return "demo"
    z, y, x = demo["shape"]
    held_out = " ".join(demo["held_out"])
    return (
        f"templates --templates {demo['templates']} --per-class {demo['per_class']} "
        f"--shape {z} {y} {x} --snr {demo['snr']} {imaging_options()}"
        + (f" --held-out {held_out}" if held_out else "")
    )


def tomograms() -> list[str]:
    """Tomogram files (or folders of them) for extraction."""
    return demo_tomograms() if use_demo() else list(config["data"]["tomograms"])


def particles_table() -> str:
    return str(DEMO / "particles.star") if use_demo() else config["data"]["particles"]


def truth_table() -> str | None:
    return str(DEMO / "truth.star") if use_demo() else config["data"]["truth"]


def templates_dir() -> str | None:
    return str(DEMO / "templates") if use_demo() else config["similarity"]["templates"]


def similarity_source() -> str:
    """The given matrix CSV, or the templates folder to compute it from."""
    source = config["similarity"]["matrix"] or templates_dir()
    if source is None:
        raise ValueError(
            "config.yaml: similarity: set 'matrix' (a similarity CSV) or 'templates' (a folder of maps)"
        )
    return source


def options(section: str) -> str:
    """A config section as JSON, for a verb's --options (changes trigger a rerun)."""
    return json.dumps(config[section], sort_keys=True)


def optional_flag(flag: str, value) -> str:
    """'--flag value' when value is set, else ''."""
    return "" if value is None else f"{flag} {value}"


def use_simulated() -> bool:
    """Train on particles simulated from the templates too (needs templates)."""
    return config["training_data"]["simulated_per_class"] > 0 and templates_dir() is not None


def training_sources() -> dict[str, list[str]]:
    """Stacks and tables that train the model: the extracted particles, and simulated ones."""
    dirs = [RESULTS / "extract"] + ([RESULTS / "simulated"] if use_simulated() else [])
    return {
        "stacks": [str(d / "subtomos.npy") for d in dirs],
        "tables": [str(d / "particles.star") for d in dirs],
    }


def training_source_flags(wildcards, input) -> str:
    return " ".join(f"--stack {s} --particles {p}" for s, p in zip(input.stacks, input.tables))


def snr_option() -> str:
    snr = config["training_data"]["snr"]
    return f"--snr-from {RESULTS / 'extract' / 'subtomos.npy'}" if snr is None else f"--snr {snr}"


def imaging_options() -> str:
    """The tomograms' imaging, as `affinitomo simulate` options."""
    im = config["imaging"]
    flags = [
        f"--imaging {im['model']}",
        f"--tilt-min {im['tilt_min']} --tilt-max {im['tilt_max']} --tilt-step {im['tilt_step']}",
        f"--contrast {im['contrast']}",
    ]
    if im["ctf"]:
        flags.append(
            f"--defocus-um {im['defocus_um']} --voltage-kv {im['voltage_kv']} "
            f"--cs-mm {im['cs_mm']} --amplitude-contrast {im['amplitude_contrast']}"
        )
    else:
        flags.append("--no-ctf")
    return " ".join(flags)


def final_outputs() -> list[str]:
    outs = [
        RESULTS / "particles.star",
        RESULTS / "umap.png",
        RESULTS / "loss.png",
        RESULTS / "similarity.png",
        RESULTS / "run.json",
    ]
    if truth_table() is not None:
        outs.append(RESULTS / "metrics.json")
    return [str(p) for p in outs]
