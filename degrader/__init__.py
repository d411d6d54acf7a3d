"""degrader: controlled damage to the weights of a language model, pure PyTorch/transformers.

Nothing here imports Ray, sets up logging or writes result files: the orchestration in
`actors/` owns every side effect. See `docs/design.md` for the layout.
"""

__version__ = "0.1.0"
