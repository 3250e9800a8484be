"""The hallucination guard on loops in unspaced scripts, wrong-script text and normal speech."""

from __future__ import annotations

import pytest

from whisper_tune import corpus_text
from whisper_tune.inference.guards import (
    compression_ratio,
    degenerate_reason,
    foreign_script_reason,
    guard_segments,
    hallucination_reason,
    has_loop,
    trim_loop,
)
from whisper_tune.inference.types import Segment, Word

# what base fine-tuned in the quick Mandarin demo wrote for a held-out clip on an AMD EPYC
CI_LOOP = (
    "静饮赛肯定是肯定肯肯肯肯肯肯肯肯肯肯肯肯肯肯肯肯肯肯肯肯肯肯肯肯肯肯 "
    "Pin it, you'll see it in a few minutes."
)

NORMAL = {
    "zh": [
        "我们明天早上九点在北京开会。",
        "这家超市的蔬菜又新鲜又便宜",
        "我昨天用iPhone拍了几张照片，发到了微信群里。",  # code-switched brand names
        "这个项目用的是PyTorch和CUDA，训练大概要三个小时。",
        "他说OK，然后我们就去吃饭了。",
    ],
    "ja": [
        "今日はいい天気ですね。明日も晴れるといいですね。",
        "東京駅から新幹線で大阪まで行きました。駅のホームはとても混んでいました。",
        "すみません、このバスは空港へ行きますか。はい、行きますよ。",
    ],
    "en": [
        "The meeting starts at nine tomorrow morning in Beijing.",
        "I think so, but we should check the numbers again before Friday.",
        "Yes, yes, I know. It's fine.",
    ],
}


def _segment(text: str, **fields) -> Segment:
    return Segment(0.0, 5.0, text, avg_logprob=-0.3, no_speech_prob=0.01, **fields)


def test_the_ci_loop_is_caught_and_cut_back_to_the_speech_before_it():
    assert has_loop(CI_LOOP)
    assert degenerate_reason(CI_LOOP) == "repeated phrase"
    assert hallucination_reason(_segment(CI_LOOP), language="zh") is not None
    (kept,) = guard_segments([_segment(CI_LOOP)], language="zh")
    assert kept.text == "静饮赛肯定是肯定肯", kept
    assert "肯肯" not in kept.text and "Pin it" not in kept.text


def test_a_loop_alone_is_dropped_and_one_inside_mixed_text_is_found():
    assert list(guard_segments([_segment("肯" * 30)], language="zh")) == []
    assert list(guard_segments([_segment("I think so. " * 4)], language="en")) == []
    assert has_loop("Pin it 肯肯肯肯肯肯肯肯肯 you'll see")
    assert has_loop("他说对对对对对对对对对对对对")
    # short repetitions are speech: laughter, a doubled word
    assert not has_loop("哈哈哈哈") and not has_loop("谢谢谢谢你") and not has_loop("no no no")


def test_han_loops_are_caught_by_their_own_compression_ratio():
    # a ten-character phrase three times, then English: no loop of short phrases, and a
    # whole-text ratio (openai/whisper's) far under 2.4
    looped = "我们去北京的路上看见" * 3 + " and then we all went home together"
    assert not has_loop(looped) and compression_ratio(looped) < 2.0
    assert degenerate_reason(looped).startswith("Han/kana compression ratio")


@pytest.mark.parametrize(("language", "text"), [(k, t) for k, v in NORMAL.items() for t in v])
def test_normal_speech_passes_untouched(language, text):
    segment = _segment(text)
    assert hallucination_reason(segment, language=language) is None
    assert list(guard_segments([segment], language=language)) == [segment]


def test_no_window_of_the_chinese_corpus_looks_degenerate():
    """The Han/kana compression threshold never flags normal text: every stretch of the
    demo corpus as long as a fast speaker's 30 s window (240 characters) passes."""
    for sentences in (corpus_text.MANDARIN_GENERAL, corpus_text.MANDARIN_DOMAIN):
        joined = "".join(sentences)
        assert len(joined) > 240
        for start in range(0, len(joined) - 240, 10):
            assert degenerate_reason(joined[start : start + 240]) is None, start


def test_latin_text_in_a_chinese_transcript_is_dropped_but_code_switching_is_not():
    invented = "Pin it, you'll see it in a few minutes."
    assert foreign_script_reason(invented, "zh") is not None
    assert foreign_script_reason(invented, "ja") is not None
    assert foreign_script_reason("Спасибо за просмотр", "ru") is None
    assert foreign_script_reason(invented, "ru") is not None
    assert foreign_script_reason(invented, "en") is None
    assert foreign_script_reason(invented, None) is None  # unknown language: no claim
    assert foreign_script_reason("OK iPhone 15 Pro", "zh") is None  # too short to judge
    assert foreign_script_reason("我用ChatGPT写了一封email给他", "zh") is None
    assert list(guard_segments([_segment(invented)], language="zh")) == []
    assert len(list(guard_segments([_segment(invented)], language="en"))) == 1


def test_a_trimmed_loop_keeps_the_words_and_end_time_of_the_kept_text():
    words = tuple(
        Word(0.2 * i, 0.2 * i + 0.2, w, 0.9)
        for i, w in enumerate(["我们", "明天", "开会", *["好"] * 10])
    )
    segment = Segment(0.0, 3.0, "我们明天开会" + "好" * 10, words=words)
    trimmed = trim_loop(segment)
    assert trimmed.text == "我们明天开会好"
    assert [w.word for w in trimmed.words] == ["我们", "明天", "开会", "好"]
    assert trimmed.end == pytest.approx(0.8)
