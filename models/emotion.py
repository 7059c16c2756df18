"""Emotion adapters: text valence and emotion (VADER, SnowNLP, multilingual-e5 prototypes), an optional
user-supplied transformers audio classifier, and the circumplex fusion of arousal and text evidence.

No labelled emotional speech ships with any installable package, so nothing here is trained or
validated on emotion labels. Arousal comes from prosody (``models/prosody.py``) relative to the
caller's own baseline; valence and the category distinction come mostly from the words.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from models.embedding import TextEmbedder

CATEGORIES: tuple[str, ...] = ("neutral", "happy", "angry", "sad", "fearful", "surprised")

# (valence, arousal) of each category on the circumplex (Russell 1980), both -1..1. Arousal is on
# Parley's scale: 0 = the caller's own baseline, so "neutral" sits at 0.
CIRCUMPLEX: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "happy": (0.8, 0.35),
    "angry": (-0.7, 0.75),
    "sad": (-0.7, -0.45),
    "fearful": (-0.6, 0.55),
    "surprised": (0.2, 0.6),
}
PRIOR: dict[str, float] = {"neutral": 0.35, "happy": 0.13, "angry": 0.13, "sad": 0.13, "fearful": 0.13, "surprised": 0.13}
AROUSAL_SIGMA = 0.5  # how sharply the voice's arousal separates the categories

# Example phrases per category; the text is scored by its similarity to the nearest ones.
PROTOTYPES: dict[str, tuple[str, ...]] = {
    "neutral": (
        "I'd like to check my account balance.",
        "Can you tell me your opening hours?",
        "My order number is four five six.",
        "I need to update my address.",
        "I'm calling about my bill for last month.",
        "Could you transfer me to billing, please?",
        "我想查一下我的账户。",
        "请问你们几点开门？",
        "我的订单号是四五六。",
        "我要改一下地址。",
        "我打电话是问上个月的账单。",
    ),
    "happy": (
        "Thank you, you've been a great help!",
        "That's wonderful news, I'm so pleased.",
        "Perfect, that solves everything, thanks a lot.",
        "I really appreciate it, you made my day.",
        "Great, I'm very happy with the service.",
        "非常感谢，你帮了我很多！",
        "太好了，我很高兴。",
        "完美，问题解决了，多谢。",
        "你们的服务真棒，我很满意。",
    ),
    "angry": (
        "This is absurd, no one ever fixes anything!",
        "I'm furious, you keep charging me for nothing.",
        "This is unacceptable, I want my money back now!",
        "I'm fed up with waiting, this is the worst service ever.",
        "Stop wasting my time and put a manager on!",
        "真是气死我了，你们到底管不管？",
        "这太不像话了，我要投诉你们！",
        "你们一直乱扣钱，太离谱了！",
        "别浪费我的时间，叫你们经理来！",
    ),
    "sad": (
        "I feel so down, everything is going wrong.",
        "My husband passed away and I don't know what to do.",
        "I lost my job and I can't pay the bills.",
        "I'm heartbroken, it's been a terrible month.",
        "我心里很难受，什么都不顺。",
        "我丈夫去世了，我不知道该怎么办。",
        "我失业了，付不起账单。",
        "我很伤心，这个月太糟糕了。",
    ),
    "fearful": (
        "I'm scared, someone has been using my card.",
        "Please help, I'm really worried about my account.",
        "I'm afraid I'm going to lose my house.",
        "I think someone is following me, I'm terrified.",
        "我好害怕，有人在盗刷我的卡。",
        "我很担心我的账户出事了。",
        "我怕会失去我的房子。",
        "我觉得有人跟踪我，吓死了。",
    ),
    "surprised": (
        "Wow, I didn't expect that at all!",
        "Really? I can't believe it.",
        "What? Since when did that happen?",
        "No way, are you serious?",
        "真的吗？我完全没想到！",
        "什么？什么时候的事？",
        "哇，太意外了！",
        "不会吧，你是认真的吗？",
    ),
}


@dataclass(frozen=True, slots=True)
class TextEmotionResult:
    """What the words say: ``valence`` -1..1 and a distribution over :data:`CATEGORIES`."""

    valence: float
    scores: dict[str, float]
    lexicon_valence: float | None  # VADER / SnowNLP alone, ``None`` when no lexicon covers the language

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"valence": round(self.valence, 3), "scores": {k: round(v, 3) for k, v in self.scores.items()}}
        if self.lexicon_valence is not None:
            out["lexicon_valence"] = round(self.lexicon_valence, 3)
        return out


class SentimentLexicon(Protocol):
    """Sentence polarity -1..1 from a lexicon. Fast (sub-millisecond to a few ms), thread-safe."""

    def valence(self, text: str) -> float: ...


class TextEmotion(Protocol):
    """Valence and emotion of a transcript. Blocking (~10-30 ms): call it in a worker thread."""

    def analyze(self, text: str, language: str) -> TextEmotionResult: ...


class AudioEmotionModel(Protocol):
    """A classifier of one window of 16 kHz float audio into some of :data:`CATEGORIES`.

    Returns probabilities for the categories it covers (summing to 1 over those); blocking.
    """

    def classify(self, audio: np.ndarray) -> dict[str, float]: ...


class VaderSentiment:
    """English VADER (``nltk-vader-sentiment``, Apache-2.0): the compound score, ~0.03 ms a sentence.

    A social-media lexicon: it misses complaints phrased without loaded words ("nobody helps me"
    reads as positive), which is why it is blended with the prototype similarity.
    """

    def __init__(self) -> None:
        from vader import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()

    def valence(self, text: str) -> float:
        return float(self._analyzer.polarity_scores(text)["compound"])


class SnowNLPSentiment:
    """Chinese sentiment from SnowNLP (MIT): naive Bayes trained on product reviews, mapped to -1..1.

    Weak outside reviews ("我很难过" scores positive), so it gets a small weight; ~2 ms a sentence.
    """

    def __init__(self) -> None:
        from snownlp import SnowNLP

        self._cls = SnowNLP
        self._lock = threading.Lock()  # SnowNLP's segmenter keeps module-level state
        with self._lock:
            self._cls("你好").sentiments  # noqa: B018 - loads the marshalled model once, here

    def valence(self, text: str) -> float:
        with self._lock:
            p = float(self._cls(text).sentiments)
        return 2.0 * p - 1.0


def _softmax(logits: Mapping[str, float]) -> dict[str, float]:
    top = max(logits.values())
    exp = {k: math.exp(v - top) for k, v in logits.items()}
    total = sum(exp.values())
    return {k: v / total for k, v in exp.items()}


def expected_valence(scores: Mapping[str, float]) -> float:
    """Valence implied by a category distribution (the circumplex coordinates, weighted)."""
    return sum(p * CIRCUMPLEX[c][0] for c, p in scores.items())


class E5TextEmotion:
    """Emotion by similarity to :data:`PROTOTYPES` (multilingual-e5), valence blended with a lexicon.

    ``lexicons`` maps a language prefix (``en``, ``zh``) to a :class:`SentimentLexicon` and its
    weight in the valence. One embedding per call (~10-25 ms); the prototypes are embedded once here.
    """

    def __init__(
        self,
        embedder: TextEmbedder,
        lexicons: Mapping[str, tuple[SentimentLexicon, float]] | None = None,
        temperature: float = 0.015,
        top_k: int = 2,
    ) -> None:
        self._embedder = embedder
        self._lexicons = dict(lexicons or {})
        self._temperature = temperature
        self._top_k = top_k
        phrases = [p for c in CATEGORIES for p in PROTOTYPES[c]]
        self._labels = np.array([c for c in CATEGORIES for _ in PROTOTYPES[c]])
        self._matrix = embedder.query(phrases)

    @classmethod
    def default(cls, embedder: TextEmbedder) -> E5TextEmotion:
        """VADER for English (weight 0.5 of valence), SnowNLP for Chinese (weight 0.25)."""
        return cls(embedder, {"en": (VaderSentiment(), 0.5), "zh": (SnowNLPSentiment(), 0.25)})

    def category_scores(self, text: str) -> dict[str, float]:
        """Softmax over categories of the mean similarity to each one's ``top_k`` nearest prototypes."""
        sims = self._matrix @ self._embedder.query([text])[0]
        logits = {}
        for c in CATEGORIES:
            best = np.sort(sims[self._labels == c])[-self._top_k :]
            logits[c] = float(best.mean()) / self._temperature
        return _softmax(logits)

    def analyze(self, text: str, language: str) -> TextEmotionResult:
        if not text.strip():
            return TextEmotionResult(0.0, dict.fromkeys(CATEGORIES, 1 / len(CATEGORIES)), None)
        scores = self.category_scores(text)
        proto_valence = expected_valence(scores)
        lexicon = next((v for k, v in self._lexicons.items() if language.lower().startswith(k)), None)
        if lexicon is None:
            return TextEmotionResult(proto_valence, scores, None)
        model, weight = lexicon
        lex = max(-1.0, min(1.0, model.valence(text)))
        return TextEmotionResult((1 - weight) * proto_valence + weight * lex, scores, lex)


def arousal_likelihood(arousal: float) -> dict[str, float]:
    """log-likelihood of each category given the voice's arousal (Gaussian around its circumplex arousal)."""
    return {c: -((arousal - CIRCUMPLEX[c][1]) ** 2) / (2 * AROUSAL_SIGMA**2) for c in CATEGORIES}


def fuse(
    arousal: float | None,
    text: TextEmotionResult | None,
    text_weight: float,
    model: Mapping[str, float] | None = None,
    model_weight: float = 0.5,
) -> dict[str, float]:
    """Six category scores (sum 1): prior x arousal likelihood x text scores^text_weight, then the deep model.

    ``text_weight`` 0..1 fades old text. A deep model (``model``, over the categories it covers)
    redistributes the mass those categories hold, ``model_weight`` of the way toward its own split.
    """
    logits = {c: math.log(PRIOR[c]) for c in CATEGORIES}
    if arousal is not None:
        for c, ll in arousal_likelihood(arousal).items():
            logits[c] += ll
    if text is not None and text_weight > 0:
        for c in CATEGORIES:
            logits[c] += text_weight * math.log(max(text.scores.get(c, 0.0), 1e-6))
    scores = _softmax(logits)
    if model:
        covered = [c for c in CATEGORIES if c in model]
        mass = sum(scores[c] for c in covered)
        total = sum(model[c] for c in covered) or 1.0
        for c in covered:
            scores[c] = (1 - model_weight) * scores[c] + model_weight * mass * model[c] / total
    return scores


# label names a checkpoint may use, lower-cased, -> our category
LABEL_SYNONYMS: dict[str, str] = {
    "neutral": "neutral", "neu": "neutral", "calm": "neutral", "neutrality": "neutral",
    "happy": "happy", "hap": "happy", "happiness": "happy", "joy": "happy", "joyful": "happy", "excited": "happy",
    "angry": "angry", "ang": "angry", "anger": "angry", "frustrated": "angry",
    "sad": "sad", "sadness": "sad",
    "fearful": "fearful", "fea": "fearful", "fear": "fearful", "afraid": "fearful", "anxious": "fearful",
    "surprised": "surprised", "sur": "surprised", "surprise": "surprised", "ps": "surprised",
}  # fmt: skip


def map_labels(id2label: Mapping[int, str]) -> dict[int, str]:
    """Class index -> category for the labels whose names match (case-insensitive); others are ignored."""
    out = {}
    for i, name in id2label.items():
        key = str(name).strip().lower()
        if key in LABEL_SYNONYMS:
            out[int(i)] = LABEL_SYNONYMS[key]
    return out


class TransformersEmotion:
    """A user-supplied transformers audio-classification checkpoint (a local directory), e.g. a
    wav2vec2/HuBERT emotion model fine-tuned on IEMOCAP or RAVDESS.

    Loads offline only (``local_files_only``). Its labels are mapped to :data:`CATEGORIES` by name
    (:data:`LABEL_SYNONYMS`); unmatched labels (e.g. "disgust") are dropped and the rest renormalised.
    **Accuracy is entirely that of the supplied checkpoint**, and so is its cost: a wav2vec2-base
    classifier takes ~100-200 ms per 1 s window on one CPU core. Inference is serialised by a lock.

    Raises ``ValueError`` when none of the checkpoint's labels matches a category.
    """

    def __init__(self, path: Path, device: str = "cpu") -> None:
        import torch
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        self._torch = torch
        self._extractor: Any = AutoFeatureExtractor.from_pretrained(str(path), local_files_only=True)  # type: ignore[no-untyped-call]
        self._model: Any = AutoModelForAudioClassification.from_pretrained(str(path), local_files_only=True)
        self._model.to(device).eval()
        self._device = device
        self._map = map_labels(self._model.config.id2label)
        if not self._map:
            raise ValueError(
                f"emotion model {path}: no label in {list(self._model.config.id2label.values())} matches {CATEGORIES}"
            )
        self.rate = int(getattr(self._extractor, "sampling_rate", 16000))
        self.categories = sorted(set(self._map.values()), key=CATEGORIES.index)
        self._lock = threading.Lock()

    def classify(self, audio: np.ndarray) -> dict[str, float]:
        x = np.asarray(audio, dtype=np.float32)
        if self.rate != 16000:
            import soxr

            x = np.asarray(soxr.resample(x, 16000, self.rate), dtype=np.float32)
        inputs = self._extractor(x, sampling_rate=self.rate, return_tensors="pt")
        with self._lock, self._torch.inference_mode():
            logits = self._model(**{k: v.to(self._device) for k, v in inputs.items()}).logits[0]
            probs = self._torch.softmax(logits.float(), dim=-1).cpu().numpy()
        out = dict.fromkeys(self.categories, 0.0)
        for i, cat in self._map.items():
            out[cat] += float(probs[i])
        total = sum(out.values()) or 1.0
        return {c: p / total for c, p in out.items()}
