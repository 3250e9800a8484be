"""Pseudo-labelling: a teacher model transcribes untranscribed audio into a training manifest,
keeping only the segments a trainer can trust (``whisper-tune label``)."""
