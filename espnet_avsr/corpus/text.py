"""Mandarin home/TV conversation sentences for the synthetic corpus, with pinyin.

Sentences are composed from templates and small vocabularies so that a corpus of
many hours is not a handful of repeats, while the character inventory stays at a
few hundred characters (a char-level ASR on a small corpus can still learn it).
Each character is paired with its tone-numbered pinyin syllable (pypinyin
``Style.TONE3``, neutral tone written as 5), which is what the speech synthesiser
speaks and what the face renderer articulates.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np
from pypinyin import Style, lazy_pinyin

#: Filler words; dataprep drops intervals whose text is only these.
FILLERS: Tuple[str, ...] = ("呃", "啊", "噢", "嗯", "唉")
#: Pinyin spoken for fillers (pypinyin gives e.g. "n2" for 嗯, which espeak spells out).
FILLER_PINYIN: Dict[str, str] = {"呃": "e4", "啊": "a1", "噢": "o1", "嗯": "en4", "唉": "ai4"}
#: Punctuation that may appear in transcripts (dataprep removes it).
PUNCTUATION = "，。？！、"
_HAN = re.compile(r"[\u4e00-\u9fff]")

_VOCAB: Dict[str, List[str]] = {
    "person": ["妈妈", "爸爸", "奶奶", "爷爷", "哥哥", "姐姐", "弟弟", "妹妹", "老王", "小李",
               "你", "他", "她", "我们", "你们", "孩子们", "阿姨", "叔叔"],
    "time": ["今天", "明天", "晚上", "周末", "下午", "一会儿", "昨天", "现在", "早上", "等一下"],
    "program": ["新闻", "电视剧", "足球比赛", "天气预报", "动画片", "综艺节目", "电影", "纪录片",
                "晚会", "篮球比赛", "广告", "音乐节目"],
    "channel": ["一台", "二台", "三台", "五台", "体育台", "新闻台", "电影台"],
    "tv_adj": ["好看", "有意思", "无聊", "太长", "很精彩", "有点吵", "挺好笑", "很感人"],
    "tv_act": ["开大", "关小", "打开", "关掉", "换个台", "暂停一下", "调亮一点"],
    "thing": ["遥控器", "手机", "眼镜", "钥匙", "杯子", "书包", "报纸", "充电器", "雨伞", "外套"],
    "place": ["桌子上", "沙发上", "厨房里", "房间里", "门口", "电视旁边", "床上", "柜子里"],
    "food": ["饺子", "面条", "米饭", "水果", "西瓜", "鸡蛋", "牛奶", "包子", "苹果", "汤", "鱼", "茶"],
    "taste": ["好吃", "太咸", "有点辣", "很甜", "凉了", "太烫", "不错"],
    "activity": ["吃饭", "看电视", "睡觉", "做作业", "打电话", "洗衣服", "做饭", "休息", "聊天",
                 "买东西", "散步", "打扫房间"],
    "out_place": ["超市", "公园", "医院", "学校", "银行", "饭店", "商场", "外婆家"],
    "weather": ["下雨", "下雪", "很冷", "很热", "刮风", "天气不错", "有雾"],
    "role": ["主持人", "演员", "歌手", "运动员", "老师", "记者", "主角"],
    "role_adj": ["很年轻", "很有名", "唱得好", "长得高", "说话快", "特别认真", "有点紧张"],
    "num": ["一", "两", "三", "四", "五", "六", "七", "八", "九", "十"],
    "hour": ["七点", "八点", "九点", "十点", "六点半", "八点半", "九点一刻"],
    "feel": ["累了", "饿了", "困了", "渴了", "冷了", "高兴", "着急"],
}

_TEMPLATES: Tuple[str, ...] = (
    "{person}{time}想看{program}吗？",
    "把电视{tv_act}吧。",
    "{time}的{program}几点开始？",
    "{program}{hour}开始，别忘了。",
    "我觉得这个{program}{tv_adj}。",
    "这个{program}真{tv_adj}啊。",
    "{person}，你看见我的{thing}了吗？",
    "{thing}在{place}，你自己去拿。",
    "你把{thing}放哪儿了？",
    "{thing}是不是在{place}？",
    "{person}在{place}{activity}呢。",
    "{person}{time}要去{out_place}。",
    "我们{time}一起去{out_place}吧。",
    "{time}我们{activity}好不好？",
    "这个{food}{taste}。",
    "今天的{food}{taste}，你尝尝。",
    "你想吃{food}还是{food}？",
    "{time}{weather}，出门带{thing}。",
    "听说{time}{weather}。",
    "那个{role}是不是{role_adj}？",
    "这个{role}{role_adj}。",
    "换到{channel}看{program}吧。",
    "{channel}在放{program}。",
    "广告太多了，换个台吧。",
    "声音太大了，小点声。",
    "我{feel}，先去{activity}。",
    "{person}是不是{feel}？",
    "还有{num}分钟就开始了。",
    "这个{program}一共有{num}十集。",
    "别看了，快去{activity}。",
    "{person}说{time}回来{activity}。",
    "你们先{activity}，我等一下就来。",
    "{person}，{food}做好了，快来吃吧！",
    "这集我看过了，后面{tv_adj}。",
    "我{time}没看{program}。",
    "谁把{thing}拿走了？",
)


@dataclass(frozen=True)
class Token:
    """One spoken character (or punctuation mark, ``pinyin == ""``)."""

    char: str
    pinyin: str

    @property
    def is_punct(self) -> bool:
        return self.pinyin == ""


def to_pinyin(sentence: str) -> List[Token]:
    """Pair every Han character with its TONE3 pinyin (neutral tone = 5).

    Punctuation is kept as tokens with empty pinyin (the synthesiser pauses there).
    Pinyin is computed on each punctuation-free run so polyphones see their context.
    """
    tokens: List[Token] = []
    for run in re.split(f"([{PUNCTUATION}])", sentence):
        if not run:
            continue
        if run in PUNCTUATION:
            tokens.append(Token(run, ""))
            continue
        if not all(_HAN.match(c) for c in run):
            raise ValueError(f"non-Han character in sentence {sentence!r}")
        sylls = lazy_pinyin(run, style=Style.TONE3, neutral_tone_with_five=True)
        if len(sylls) != len(run):
            raise ValueError(f"pinyin/character count mismatch for {run!r}: {sylls}")
        for ch, syl in zip(run, sylls):
            tokens.append(Token(ch, FILLER_PINYIN.get(ch, syl)))
    return tokens


def make_sentence(rng: np.random.Generator) -> str:
    """Compose one sentence from a random template and random slot fillers."""
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]

    def fill(match: "re.Match[str]") -> str:
        words = _VOCAB[match.group(1)]
        return words[int(rng.integers(len(words)))]

    sentence = re.sub(r"\{(\w+)\}", fill, template)
    if rng.random() < 0.12:  # a leading hesitation, as in spontaneous speech
        sentence = FILLERS[int(rng.integers(len(FILLERS)))] + "，" + sentence
    return sentence


def make_babble_text(rng: np.random.Generator) -> str:
    """Off-grammar speech for babble and TV: a run of 5-14 inventory characters in random
    order. It sounds like the corpus's Mandarin but is (almost surely) no sentence the
    grammar makes, so the recogniser cannot pick the babble's words as likely text."""
    chars = _inventory()
    return "".join(chars[int(i)] for i in rng.integers(len(chars), size=int(rng.integers(5, 15))))


def _inventory() -> List[str]:
    global _INVENTORY
    if _INVENTORY is None:
        _INVENTORY = [c for c in character_inventory() if c not in FILLERS]
    return _INVENTORY


_INVENTORY = None


def character_inventory() -> List[str]:
    """All Han characters the generator can produce (for docs and tests)."""
    chars = set("".join(_TEMPLATES)) | set("".join(FILLERS))
    for words in _VOCAB.values():
        chars |= set("".join(words))
    return sorted(c for c in chars if _HAN.match(c))


def all_syllables() -> List[str]:
    """Every pinyin syllable the generator can produce (context-free approximation)."""
    sylls = set(FILLER_PINYIN.values())
    for text in list(_TEMPLATES) + [w for ws in _VOCAB.values() for w in ws]:
        plain = re.sub(r"\{\w+\}", "，", text)
        sylls |= {t.pinyin for t in to_pinyin(plain) if not t.is_punct}
    return sorted(sylls)


def strip_punct(tokens: Sequence[Token]) -> str:
    """The transcript without punctuation (what scoring compares)."""
    return "".join(t.char for t in tokens if not t.is_punct)
