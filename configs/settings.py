"""The parts of an experiment's config: model, lesion, sampling, task, run. Each is frozen and checks its own fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from configs.prompts import TASK_PROMPTS, Prompt, PromptFileError, prompts_for_task
from degrader.groups import parse_group
from degrader.methods import METHODS, get_method
from degrader.schedules import levels_for

IMAGES_DIR = Path(__file__).parent / "images"
DTYPE_NAMES = ("auto", "float16", "bfloat16", "float32")


@dataclass(frozen=True)
class ModelSettings:
    """The loaded model: what every variant of a sweep shares (an actor loads it once)."""

    model_name: str = "google/gemma-3-4b-it"  # HF id, local folder, "embedded" or "random:gemma-3-4b-it"
    dtype: str = "auto"  # "auto" = bfloat16 on GPU, float32 on CPU (Gemma 3 overflows in float16)
    load_in_4bit: bool = False  # bitsandbytes 4-bit weights (GPU only)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPE_NAMES:
            raise ValueError(f"dtype {self.dtype!r} is unknown; use one of {DTYPE_NAMES}")


@dataclass(frozen=True)
class LesionSettings:
    """What is damaged and how much: a parameter group, a method and its levels."""

    param_group_name: str = "attn_only"  # a named group or a layer range (degrader/groups.py)
    degradation_method: str = "uni_quant"  # a name of degrader/methods.py's METHODS
    min_deg: float = 2  # first level, in the method's unit (bits, standard deviation, probability, ...)
    max_deg: float = 256  # last level
    deg_steps: int = 5  # how many levels, spaced by the method's schedule (degrader/schedules.py)

    def __post_init__(self) -> None:
        parse_group(self.param_group_name)  # raises with the valid names and the layer-range syntax
        if self.degradation_method not in METHODS:
            raise ValueError(f"degradation_method {self.degradation_method!r} is unknown; use one of {sorted(METHODS)}")
        try:
            levels_for(self.degradation_method, self.min_deg, self.max_deg, self.deg_steps)
        except ValueError as error:
            method = get_method(self.degradation_method)
            raise ValueError(f"{error} (min_deg={self.min_deg}, max_deg={self.max_deg} are levels of {method.name}, "
                             f"{method.level_name}; fix them with --set min_deg=... --set max_deg=...)") from None

    @property
    def levels(self) -> list[float]:
        """The degradation levels, in the order they run."""
        return levels_for(self.degradation_method, self.min_deg, self.max_deg, self.deg_steps)


@dataclass(frozen=True)
class SamplingSettings:
    """How tokens are chosen, and the base seed of the lesion's and the sampling's random draws."""

    seed: int = 42  # repetition r uses seed + r (degrader/seeding.py), for the lesion and for sampling
    temperature: float = 1.0
    do_sample: bool = True  # false: greedy decoding
    top_k: int = 64  # Gemma 3's generation_config values, which the thesis's generate() applied
    top_p: float = 0.95
    max_new_tokens: int = 350

    def __post_init__(self) -> None:
        require_count("max_new_tokens", self.max_new_tokens)
        if not self.temperature > 0:
            raise ValueError("temperature must be > 0 (use do_sample=false for greedy decoding), "
                             f"got {self.temperature}")
        if self.top_k < 0 or not 0 < self.top_p <= 1:
            raise ValueError("top_k must be >= 0 (0 = off) and top_p in (0, 1] (1 = off); "
                             f"got {self.top_k}, {self.top_p}")


@dataclass(frozen=True)
class TaskSettings:
    """What the model is asked: a task's prompts, the picture shown with them, and the perplexity probe."""

    prompt_group: str  # task whose prompts run: "dreams", "iq" or "cookie_theft"
    # --prompts: a TOML/JSON prompt set or the thesis's configs/prompts.py (docs/prompts.md); None = built-in set.
    # Not in result_hash: records are keyed by prompt text, and a prompt's picture is in image_filename.
    prompts_file: str | None = None
    max_prompts: int | None = None  # run only the first N prompts (quick runs)
    image_enabled: bool = False  # show the picture with every prompt
    # in configs/images/, or an absolute path; a prompt file that names a picture replaces it
    image_filename: str = "cookie_theft_standin.png"
    compute_perplexity: bool = False  # perplexity of perplexity_text, once per (level, repetition)
    perplexity_text: str = "The quick brown fox jumps over the lazy dog."
    # the prompts, read once here, so that actors on other nodes never need the file
    prompt_set: tuple[Prompt, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # the image is checked when a task that shows it is planned (experiments.check_image), not here: the
        # table of experiments is built on import, and a missing picture must not break every command
        if self.prompt_group not in TASK_PROMPTS:
            raise ValueError(f"prompt_group {self.prompt_group!r} is unknown; use one of {sorted(TASK_PROMPTS)}")
        if self.max_prompts is not None and self.max_prompts < 1:
            raise ValueError(f"max_prompts must be >= 1 (or unset for all prompts), got {self.max_prompts}")
        self._load_prompts()

    @property
    def prompts(self) -> tuple[Prompt, ...]:
        """The prompts that run (the first max_prompts of the task's set)."""
        return self.prompt_set[: self.max_prompts]

    @property
    def image_path(self) -> Path:
        """The picture shown with every prompt when image_enabled."""
        path = Path(self.image_filename)
        return path if path.is_absolute() else IMAGES_DIR / path

    def _load_prompts(self) -> None:
        """Read the prompt set (built-in or --prompts); a picture named by its prompts replaces image_filename."""
        if self.prompts_file is None:
            object.__setattr__(self, "prompt_set", TASK_PROMPTS[self.prompt_group])  # frozen: set once, here
            return
        try:
            object.__setattr__(self, "prompt_set", prompts_for_task(self.prompts_file, self.prompt_group))
        except PromptFileError as error:
            raise ValueError(f"--prompts: {error}") from None
        images = {prompt.image for prompt in self.prompt_set}
        if images == {None}:
            return
        if len(images) > 1:  # the worker shows one picture to a whole batch
            raise ValueError(f"--prompts: {self.prompts_file} names several pictures ({', '.join(map(str, images))}); "
                             "every prompt of a set must name the same picture, or none")
        if not self.image_enabled:
            raise ValueError(f"--prompts: {self.prompts_file} shows the picture {images.pop()} but image_enabled is "
                             "false; --set image_enabled=true, or remove the prompts' image")
        # the picture is part of the result hash through image_filename, so the file's picture is recorded there
        object.__setattr__(self, "image_filename", images.pop())
        if not self.image_path.is_file():
            raise ValueError(f"--prompts: the picture {self.image_path} named by {self.prompts_file} does not exist; "
                             f"name a file in {IMAGES_DIR} or an absolute path")


@dataclass(frozen=True)
class RunSettings:
    """How much runs and how it is batched: repetitions, batch sizes, and the output file's suffix."""

    n_rep: int = 10  # repetitions of every level; repetition r uses seed + r
    max_batch_size: int = 40  # most prompts generated together
    # units (level, repetition) decoded as one batch, each with its own degraded copy of the group
    # (rep-batching); 0 = as many as GPU memory allows (1 on the CPU), 1 = one unit at a time
    units_per_batch: int = 0
    name_suffix: str = ""  # ends the output file's name (degrader/run/plan.py: output_path)

    def __post_init__(self) -> None:
        require_count("n_rep", self.n_rep)
        require_count("max_batch_size", self.max_batch_size)
        if not isinstance(self.units_per_batch, int) or self.units_per_batch < 0:
            raise ValueError("units_per_batch must be an integer >= 0 (0 = as many as fit), "
                             f"got {self.units_per_batch!r}")


def require_count(name: str, value: object) -> None:
    """`value` is an integer >= 1, else a ValueError naming the field."""
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
