"""whisper-tune benchmarks, one module per benchmark, each measured side by side in one run.

Run from the repository root as ``python -m bench.<name>`` or ``whisper-tune bench <name>``:
``transcribe``, ``finetune``, ``evaluate``, ``server``. Every benchmark prints tables, writes
JSON (``--output``, default ``bench/results/<name>.json``) and has a ``--smoke`` mode for CI.
``harness`` (timing, probes, tables) and ``speech`` (synthetic audio) are shared helpers.
See docs/benchmarks.md for the measured results.
"""
