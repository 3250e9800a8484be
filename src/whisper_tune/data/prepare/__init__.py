"""Turn corpora people already have into the seed's JSONL manifests.

One module per source layout (AIShell, WenetSpeech, HF audiofolder, LJSpeech, Common Voice,
Kaldi, subtitled recordings), plus ``check`` to validate a manifest before training. Each
preparer returns a :class:`~whisper_tune.data.prepare.common.PrepareReport`.
"""
