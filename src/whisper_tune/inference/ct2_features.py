"""faster-whisper's log-mel features computed a slice of frames at a time.

faster-whisper's ``FeatureExtractor`` makes the short-time Fourier transform of a whole input
at once: about 170 MB of temporary arrays for 5 minutes of audio, 2 GB for an hour. This one
gives the same features (the same window, FFT, mel filters, and the dynamic-range floor taken
over the whole input) while holding only one slice's spectrum, so a long file can be decoded
in one piece — the same windows and previous-text prompts as faster-whisper on the whole file —
with memory that grows only by the features themselves (32 KB per second of audio).
"""

from __future__ import annotations

import numpy as np
from faster_whisper.feature_extractor import FeatureExtractor

SLICE_FRAMES = 3000  # frames transformed at a time (one 30 s window: ~5 MB of spectrum)


class SlicedFeatureExtractor(FeatureExtractor):
    """:class:`FeatureExtractor` whose features are computed ``SLICE_FRAMES`` at a time."""

    def __call__(
        self, waveform: np.ndarray, padding: int = 160, chunk_length: int | None = None
    ) -> np.ndarray:
        if chunk_length is not None:  # as the parent: the window length it pads to
            self.n_samples = chunk_length * self.sampling_rate
            self.nb_max_frames = self.n_samples // self.hop_length
        waveform = np.asarray(waveform, dtype=np.float32)
        half = self.n_fft // 2  # the parent's centred STFT pads by reflection
        padded = np.pad(np.pad(waveform, (0, padding)), (half, half), mode="reflect")
        frames = (len(padded) - self.n_fft) // self.hop_length  # its last frame is dropped
        window = np.hanning(self.n_fft + 1)[:-1].astype(np.float32)
        mel = np.empty((self.mel_filters.shape[0], frames), dtype=np.float32)
        for first in range(0, frames, SLICE_FRAMES):
            count = min(SLICE_FRAMES, frames - first)
            columns = np.lib.stride_tricks.as_strided(
                padded[first * self.hop_length :],
                (count, self.n_fft),
                (self.hop_length * padded.strides[0], padded.strides[0]),
                writeable=False,
            )
            spectrum = np.fft.rfft(columns * window, n=self.n_fft, axis=-1).astype(np.complex64)
            mel[:, first : first + count] = self.mel_filters @ (np.abs(spectrum) ** 2).T
        del padded  # the spectrum slices are small; the padded input is not
        # the parent's log scale, in place: log10, a floor 8 below the peak, then scaled
        np.log10(np.clip(mel, 1e-10, None, out=mel), out=mel)
        np.maximum(mel, mel.max() - 8.0, out=mel)
        mel += 4.0
        mel /= 4.0
        return mel
