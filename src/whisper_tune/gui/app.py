"""The tkinter window: widgets that show a :class:`Controller` and send it the user's commands.

Nothing here does slow work: the controller's workers do, and :meth:`App.poll` picks up
their events every ``POLL_MS`` milliseconds with ``after``, so the window never freezes.
"""

from __future__ import annotations

import tkinter as tk
from pathlib import Path
from tkinter import filedialog, ttk

from whisper_tune.engine_settings import GUI_DEFAULTS, EngineSettings
from whisper_tune.errors import WhisperTuneError
from whisper_tune.gui.controller import (
    Controller,
    Event,
    Failed,
    LiveText,
    ModelReady,
    RecognitionEnded,
    RecognitionStarted,
    SegmentDecoded,
    Source,
    SourceAdded,
    SourceRecognised,
    create_controller,
    format_segment,
)
from whisper_tune.inference.types import TranscribeOptions
from whisper_tune.languages import LANGUAGES, language_code

POLL_MS = 50
AUTO = "auto"
AUDIO_FILES = [
    ("Audio and video", "*.wav *.mp3 *.flac *.ogg *.opus *.m4a *.aac *.wma *.webm *.mp4 *.mkv"),
    ("All files", "*"),
]
SAVE_FORMATS = [
    ("SubRip subtitles", "*.srt"),
    ("WebVTT subtitles", "*.vtt"),
    ("Plain text", "*.txt"),
    ("JSON", "*.json"),
]


def language_choices() -> list[str]:
    """``auto`` then every Whisper language as ``code (name)``."""
    return [AUTO] + [f"{code} ({name})" for code, name in LANGUAGES.items()]


def language_choice(language: str | None) -> str:
    code = language_code(language)
    return AUTO if code is None else f"{code} ({LANGUAGES[code]})"


class App:
    """The main window; ``open_paths``/``save_to`` are what the file dialogs call."""

    def __init__(self, root: tk.Tk, controller: Controller, language: str | None = None) -> None:
        self.root = root
        self.controller = controller
        self.shown: int | None = None  # id of the source whose transcript is on screen
        self._rows: list[int] = []  # source id of each list row
        self._after_id: str | None = None
        root.title(f"whisper-tune — {controller.model_name}")
        root.geometry("960x580")
        root.minsize(720, 420)
        self.timestamps = tk.BooleanVar(value=True)
        self.to_simple = tk.BooleanVar(value=False)
        self.remove_pun = tk.BooleanVar(value=False)
        self.translate = tk.BooleanVar(value=False)
        self.language = tk.StringVar(value=language_choice(language))
        self.status = tk.StringVar()
        self._build()
        root.protocol("WM_DELETE_WINDOW", self.close)
        root.bind("<Control-o>", lambda _e: self.choose_files())
        root.bind("<Control-s>", lambda _e: self.choose_save_path())
        root.bind("<Control-q>", lambda _e: self.close())
        self.set_status(f"Loading model {controller.model_name}…")
        controller.start()
        self._refresh()
        self._after_id = root.after(POLL_MS, self.poll)

    # --- layout -------------------------------------------------------------------------------

    def _build(self) -> None:
        style = ttk.Style(self.root)
        if "clam" in style.theme_names():
            style.theme_use("clam")
        style.configure("Horizontal.TProgressbar", background="#3b7dd8")
        bar = ttk.Frame(self.root, padding=(6, 6, 6, 0))
        bar.pack(fill="x")
        self.open_button = self._button(bar, "Open files…", self.choose_files)
        self.record_button = self._button(bar, "Record", self.toggle_recording)
        self.live_button = self._button(bar, "Live", self.toggle_live)
        self.play_button = self._button(bar, "Play", self.play)
        self.stop_button = self._button(bar, "Stop", self.stop_playback)
        ttk.Separator(bar, orient="vertical").pack(side="left", fill="y", padx=6)
        self.recognise_button = self._button(bar, "Recognise", self.recognise)
        self.cancel_button = self._button(bar, "Cancel", self.cancel)
        ttk.Separator(bar, orient="vertical").pack(side="left", fill="y", padx=6)
        self.save_button = self._button(bar, "Save as…", self.choose_save_path)
        self.copy_button = self._button(bar, "Copy", self.copy)

        options = ttk.Frame(self.root, padding=(6, 6))
        options.pack(fill="x")
        self.checkboxes: dict[str, ttk.Checkbutton] = {}
        for text, var, rerender in (
            ("Timestamps", self.timestamps, True),
            ("To simplified", self.to_simple, False),
            ("Remove punctuation", self.remove_pun, False),
            ("Translate to English", self.translate, False),
        ):
            command = self.render if rerender else self._option_changed
            box = ttk.Checkbutton(options, text=text, variable=var, command=command)
            box.pack(side="left", padx=(0, 10))
            self.checkboxes[text] = box
        ttk.Label(options, text="Language:").pack(side="left")
        self.language_box = ttk.Combobox(
            options, textvariable=self.language, values=language_choices(), width=18
        )
        self.language_box.pack(side="left", padx=4)
        self.language_box.bind("<<ComboboxSelected>>", lambda _e: self._option_changed())

        footer = ttk.Frame(self.root, padding=6)
        footer.pack(side="bottom", fill="x")  # packed before the panes so it is never squeezed
        self.progress = ttk.Progressbar(footer, length=220, maximum=100)
        self.progress.pack(side="left")
        self.status_label = ttk.Label(footer, textvariable=self.status, anchor="w")
        self.status_label.pack(side="left", fill="x", expand=True, padx=8)

        panes = ttk.PanedWindow(self.root, orient="horizontal")
        panes.pack(fill="both", expand=True, padx=6)
        left = ttk.Frame(panes)
        ttk.Label(left, text="Audio").pack(anchor="w")
        self.source_list = tk.Listbox(left, selectmode="extended", exportselection=False, width=28)
        self.source_list.pack(fill="both", expand=True)
        self.source_list.bind("<<ListboxSelect>>", lambda _e: self._selection_changed())
        panes.add(left, weight=1)
        right = ttk.Frame(panes)
        self.transcript_title = ttk.Label(right, text="Transcript")
        self.transcript_title.pack(anchor="w")
        text_frame = ttk.Frame(right)
        text_frame.pack(fill="both", expand=True)
        self.text = tk.Text(text_frame, wrap="word", font=("DejaVu Sans", 12), state="disabled")
        self.text.tag_configure("partial", foreground="#8a94a3")  # live text that may change
        scroll = ttk.Scrollbar(text_frame, orient="vertical", command=self.text.yview)
        self.text.configure(yscrollcommand=scroll.set)
        scroll.pack(side="right", fill="y")
        self.text.pack(side="left", fill="both", expand=True)
        panes.add(right, weight=3)

    @staticmethod
    def _button(parent: ttk.Frame, text: str, command) -> ttk.Button:
        button = ttk.Button(parent, text=text, command=command)
        button.pack(side="left", padx=(0, 4))
        return button

    # --- commands -------------------------------------------------------------------------------

    def choose_files(self) -> None:
        paths = filedialog.askopenfilenames(
            parent=self.root, title="Open audio files", filetypes=AUDIO_FILES
        )
        if paths:
            self.open_paths(paths)

    def open_paths(self, paths) -> None:
        """Open files (what the Open dialog calls): they are decoded in the background."""
        self.source_list.selection_clear(0, "end")
        self.controller.open_files(paths)
        self.set_status(f"Opening {len(paths)} file(s)…")

    def toggle_recording(self) -> None:
        try:
            if self.controller.recorder.active:
                source = self.controller.stop_recording()
                self.source_list.selection_clear(0, "end")
                self._add_source(source)
                self.set_status(f"Recorded {source.duration:.1f} s as {source.name}")
            else:
                self.controller.start_recording()
                self.set_status("Recording… press Stop recording to finish")
        except WhisperTuneError as exc:
            self.set_status(str(exc), error=True)
        self._refresh()

    def toggle_live(self) -> None:
        """Start transcribing the microphone as it is heard, or stop (the last turn is
        transcribed before the session ends)."""
        try:
            if self.controller.live:
                self.controller.stop_live()
                self.set_status("Live: finishing the last turn…")
            else:
                source = self.controller.start_live(
                    language=language_code(self.language.get().split(" ")[0]),
                    to_simple=self.to_simple.get(),
                    remove_pun=self.remove_pun.get(),
                )
                self.source_list.selection_clear(0, "end")
                self._add_source(source)
                self.show(source.id)
                self.set_status("Live: listening… speak; press Stop live to finish")
        except WhisperTuneError as exc:
            self.set_status(str(exc), error=True)
        self._refresh()

    def play(self) -> None:
        if self.shown is None:
            return
        try:
            self.controller.play(self.shown)
            self.set_status(f"Playing {self.controller.sources[self.shown].name}")
        except WhisperTuneError as exc:
            self.set_status(str(exc), error=True)

    def stop_playback(self) -> None:
        self.controller.stop_playback()

    def recognise(self) -> None:
        selected = self.selected_ids() or ([self.shown] if self.shown is not None else [])
        try:
            self.controller.recognise(
                selected,
                language=language_code(self.language.get().split(" ")[0]),
                task="translate" if self.translate.get() else "transcribe",
                to_simple=self.to_simple.get(),
                remove_pun=self.remove_pun.get(),
            )
        except WhisperTuneError as exc:
            self.set_status(str(exc), error=True)
        self._refresh()

    def cancel(self) -> None:
        self.controller.cancel()
        self.set_status("Cancelling after the segment being decoded…")

    def choose_save_path(self) -> None:
        if self.shown is None:
            return
        source = self.controller.sources[self.shown]
        path = filedialog.asksaveasfilename(
            parent=self.root,
            title="Save transcript",
            filetypes=SAVE_FORMATS,
            defaultextension=".srt",
            initialfile=f"{Path(source.name).stem}.srt",
            initialdir=str(source.path.parent) if source.path else None,
        )
        if path:
            self.save_to(path)

    def save_to(self, path: str | Path) -> None:
        """Save the shown transcript (what the Save dialog calls); the extension sets the format."""
        try:
            written = self.controller.save(self.shown, path)
            self.set_status(f"Saved {written}")
        except WhisperTuneError as exc:
            self.set_status(str(exc), error=True)

    def copy(self) -> None:
        text = self.text.get("1.0", "end-1c")
        self.root.clipboard_clear()
        self.root.clipboard_append(text)
        self.set_status(f"Copied {len(text)} characters to the clipboard")

    def close(self) -> None:
        if self._after_id:
            self.root.after_cancel(self._after_id)
        self.controller.close()
        self.root.destroy()

    # --- view updates -------------------------------------------------------------------------

    def poll(self) -> None:
        """Show what the workers did since the last poll; runs every POLL_MS on the UI thread."""
        for event in self.controller.poll():
            self._show_event(event)
        if self.controller.recorder.active:
            self.set_status(f"Recording… {self.controller.recorder.seconds:.1f} s")
        self._refresh()
        self._after_id = self.root.after(POLL_MS, self.poll)

    def _show_event(self, event: Event) -> None:
        sources = self.controller.sources
        if isinstance(event, ModelReady):
            self.set_status(f"Model ready: {event.description}")
        elif isinstance(event, SourceAdded):
            self._add_source(event.source)
            self.set_status(f"Opened {event.source.name} ({event.source.duration:.1f} s)")
        elif isinstance(event, RecognitionStarted):
            self.show(event.source_id)
            self.progress.configure(mode="indeterminate", value=0)
            self.progress.start(20)
            name = sources[event.source_id].name
            self.set_status(f"Recognising {name} ({event.position}/{event.count})…")
        elif isinstance(event, SegmentDecoded):
            self._stop_spinning()
            self.progress.configure(value=100 * event.progress)
            if event.source_id == self.shown:
                self._show_live("", "")
                self._append_line(format_segment(event.segment, self.timestamps.get()))
                self.text.mark_set("live", "end-1c")
        elif isinstance(event, LiveText):
            if event.source_id == self.shown:
                self._show_live(event.committed, event.partial)
        elif isinstance(event, SourceRecognised):
            source = sources[event.source_id]
            self.progress.configure(value=100)
            self.set_status(
                f"Recognised {source.name}: {source.duration:.1f} s of audio in "
                f"{event.seconds:.1f} s, language {event.info.language}"
            )
        elif isinstance(event, RecognitionEnded):
            self._stop_spinning()
            if event.cancelled:
                self.set_status("Recognition cancelled")
        elif isinstance(event, Failed):
            self.set_status(event.message, error=True)

    def _stop_spinning(self) -> None:
        """Turn the waiting animation (before the first segment) into a progress bar."""
        if str(self.progress.cget("mode")) == "indeterminate":
            self.progress.stop()
            self.progress.configure(mode="determinate")

    def _add_source(self, source: Source) -> None:
        self._rows.append(source.id)
        self.source_list.insert("end", f"{source.name}  ({source.duration:.1f} s)")
        self.source_list.selection_set("end")
        if len(self.selected_ids()) == 1:
            self.show(source.id)

    def selected_ids(self) -> list[int]:
        return [self._rows[row] for row in self.source_list.curselection()]

    def _selection_changed(self) -> None:
        selected = self.selected_ids()
        if selected:
            self.show(selected[0])

    def show(self, source_id: int) -> None:
        """Put a source's transcript on screen."""
        self.shown = source_id
        source = self.controller.sources[source_id]
        self.transcript_title.configure(text=f"Transcript — {source.name}")
        self.render()

    def render(self) -> None:
        """Redraw the shown transcript (after a new selection or the Timestamps option)."""
        text = (
            ""
            if self.shown is None
            else self.controller.transcript(self.shown, self.timestamps.get())
        )
        self.text.configure(state="normal")
        self.text.delete("1.0", "end")
        self.text.insert("1.0", text)
        self.text.configure(state="disabled")
        self.text.mark_set("live", "end-1c")  # where the live turn is shown
        self.text.mark_gravity("live", "left")

    def _show_live(self, committed: str, partial: str) -> None:
        """Replace the live turn's text: the committed words, then the partial ones in grey."""
        self.text.configure(state="normal")
        self.text.delete("live", "end-1c")
        if committed or partial:
            newline = "\n" if self.text.get("1.0", "live") else ""
            space = " " if committed and partial else ""
            self.text.insert("live", newline + committed + space, (), partial, ("partial",))
            self.text.see("end")
        self.text.configure(state="disabled")

    def _append_line(self, line: str) -> None:
        self.text.configure(state="normal")
        if self.text.get("1.0", "end-1c"):
            line = "\n" + line
        self.text.insert("end", line)
        self.text.see("end")
        self.text.configure(state="disabled")

    def _option_changed(self) -> None:
        if self.shown is not None and self.controller.sources[self.shown].segments:
            self.set_status("Option changed: the new option applies on the next Recognise")

    def set_status(self, text: str, error: bool = False) -> None:
        self.status.set(text)
        self.status_label.configure(foreground="#b00020" if error else "")

    def _refresh(self) -> None:
        """Enable the buttons that make sense now."""
        c = self.controller
        recording = c.recorder.active
        live = c.live
        has_source = self.shown is not None
        has_text = has_source and bool(c.sources[self.shown].segments)
        self._enable(self.record_button, not live)
        self.record_button.configure(text="Stop recording" if recording else "Record")
        self._enable(self.live_button, live or (c.model_ready and not c.busy and not recording))
        self.live_button.configure(text="Stop live" if live else "Live")
        self._enable(self.play_button, has_source and not recording)
        self._enable(self.stop_button, has_source)
        self._enable(
            self.recognise_button, c.model_ready and has_source and not c.busy and not recording
        )
        self._enable(self.cancel_button, c.busy and not live)
        self._enable(self.save_button, has_text and not c.busy)
        self._enable(self.copy_button, has_text)

    @staticmethod
    def _enable(button: ttk.Button, enabled: bool) -> None:
        button.state(["!disabled"] if enabled else ["disabled"])


def run_app(
    engine: EngineSettings = GUI_DEFAULTS,
    options: TranscribeOptions | None = None,
    language: str | None = None,
) -> int:
    """Open the desktop app and run it until the window is closed."""
    language_code(language)  # a bad --language fails here, before any window opens
    try:
        root = tk.Tk()
    except tk.TclError as exc:
        raise WhisperTuneError(
            f"cannot open a window ({exc}); the desktop app needs a display "
            "(set DISPLAY, or run it under xvfb-run)"
        ) from None
    controller = create_controller(engine, options)
    App(root, controller, language)
    root.mainloop()
    return 0
