"""The runtime without the demo extra: hibari-tts and pypinyin are needed only to synthesise."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# In the child process, as if `pip install whisper-tune` had left the demo extra out.
WITHOUT_DEMO_EXTRA = "import sys\nsys.modules['hibari'] = sys.modules['pypinyin'] = None\n"


def test_convert_checks_parity_without_the_demo_extra(tiny_whisper_en, tmp_path):
    code = WITHOUT_DEMO_EXTRA + textwrap.dedent(
        f"""
        import json
        from whisper_tune.convert.ct2_export import convert_to_ct2
        report = convert_to_ct2({str(tiny_whisper_en)!r}, {str(tmp_path / "ct2")!r}, "float32")
        print(json.dumps(report["parity"]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    parity = json.loads(result.stdout.strip().splitlines()[-1])
    assert parity["audio"].startswith("recorded: 'The quick brown fox")
    assert parity["hf_tokens"] > 0  # the clip was decoded, not skipped
