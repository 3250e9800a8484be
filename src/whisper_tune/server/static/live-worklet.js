// The web page's Live mode: microphone samples (at the AudioContext's rate) to 16 kHz mono
// PCM16, posted to the page in 100 ms blocks. Each output sample is the mean of the input
// samples it covers (a box low-pass before decimation).
"use strict";
const OUT_RATE = 16000;
const BLOCK = 1600;

class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / OUT_RATE;  // input samples per output sample
    this.sum = 0;
    this.count = 0;
    this.due = this.step;
    this.block = new Int16Array(BLOCK);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      this.sum += channel[i];
      this.count += 1;
      if (this.count >= this.due) {
        const value = Math.max(-1, Math.min(1, this.sum / this.count));
        this.block[this.filled++] = Math.round(value * 32767);
        this.due += this.step - this.count;
        this.sum = 0;
        this.count = 0;
        if (this.filled === BLOCK) {
          this.port.postMessage(this.block.buffer, [this.block.buffer]);
          this.block = new Int16Array(BLOCK);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("pcm-capture", PcmCapture);
