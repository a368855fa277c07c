"""Emile's thin Python layer.

The C core never imports this package and never runs a user's Python: the
worker starts `python3 -m emile.oracle` (a trusted process of its own) for a
task whose reference is a KernelBench-style problem file, `emile export`
copies `torch_op.py` into the package it writes, and `emile taste --hf` runs
`python3 -m emile.taste_hf` once per side, sandboxed (docs/PYTORCH.md has the
whole story); the triton_* modules are the Triton language's ahead-of-time
build step, run in the compile sandbox (src/backend/lang_triton.c).
"""
