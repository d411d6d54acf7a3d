"""Make Debian's WordNet 3.0 readable by nltk: python scripts/enable_wordnet.py [--nltk-data DIR]

Needs root once: `apt-get install wordnet-base wordnet-sense-index` (nothing on the package index ships
the data). Copies /usr/share/wordnet into DIR/corpora/wordnet (nltk refuses symlinked files) and writes
the `lexnames` file that Debian does not ship (its 45 lines are the lexicographer file names of the
lexnames(5WN) man page). DIR defaults to $NLTK_DATA, else ~/nltk_data (both on nltk's search path).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

DEBIAN_WORDNET = Path("/usr/share/wordnet")
# lexnames(5WN): file number = position; the syntactic category is 1 noun, 2 verb, 3 adjective, 4 adverb.
LEXICOGRAPHER_FILES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute",
    "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food",
    "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon", "noun.plant",
    "noun.possession", "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition", "verb.communication",
    "verb.competition", "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl",
)
CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def lexnames() -> str:
    """The lexnames file: `NN<TAB>name<TAB>category` per line."""
    return "".join(f"{number:02d}\t{name}\t{CATEGORY[name.split('.')[0]]}\n"
                   for number, name in enumerate(LEXICOGRAPHER_FILES))


def install(nltk_data: Path) -> Path:
    """Copy the WordNet files under nltk_data/corpora/wordnet and add lexnames; returns that folder."""
    if not (DEBIAN_WORDNET / "data.noun").exists():
        raise FileNotFoundError(f"{DEBIAN_WORDNET}/data.noun is missing: run (as root) "
                                "apt-get install wordnet-base wordnet-sense-index")
    target = nltk_data / "corpora" / "wordnet"
    target.mkdir(parents=True, exist_ok=True)
    for source in DEBIAN_WORDNET.iterdir():
        if source.is_file():
            shutil.copyfile(source, target / source.name)
    (target / "lexnames").write_text(lexnames(), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    default = Path(os.environ.get("NLTK_DATA", Path.home() / "nltk_data")).expanduser()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nltk-data", type=Path, default=default, help=f"nltk data folder (default {default})")
    args = parser.parse_args(argv)
    try:
        target = install(args.nltk_data)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"WordNet 3.0 for nltk in {target}; export NLTK_DATA={args.nltk_data} if it is not a default path")
    return 0


if __name__ == "__main__":
    sys.exit(main())
