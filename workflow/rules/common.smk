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


def tomograms() -> list[str]:
    """Tomogram files (or folders of them) for extraction."""
    return demo_tomograms() if use_demo() else list(config["data"]["tomograms"])


def particles_table() -> str:
    return str(DEMO / "particles.star") if use_demo() else config["data"]["particles"]


def truth_table() -> str | None:
    return str(DEMO / "truth.star") if use_demo() else config["data"]["truth"]


def templates_dir() -> str | None:
    return str(DEMO / "templates") if use_demo() else config["similarity"]["templates"]


def options(section: str) -> str:
    """A config section as JSON, for a verb's --options (changes trigger a rerun)."""
    return json.dumps(config[section], sort_keys=True)


def optional_flag(flag: str, value) -> str:
    """'--flag value' when value is set, else ''."""
    return "" if value is None else f"{flag} {value}"


def final_outputs() -> list[str]:
    outs = [
        RESULTS / "particles.star",
        RESULTS / "umap.png",
        RESULTS / "loss.png",
        RESULTS / "similarity.png",
    ]
    if truth_table() is not None:
        outs.append(RESULTS / "metrics.json")
    return [str(p) for p in outs]
