"""The desktop app (``whisper-tune gui``): a tkinter view over a widget-free controller."""
