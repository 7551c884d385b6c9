"""AVR-Synth's cross-modal families cannot be solved from the text alone or from
one modality: a majority baseline and conditional-logit (softmax over options)
baselines trained on train items stay within a few points of chance on dev."""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest

from salmonn_o1.data.synthetic import CROSS_MODAL_FAMILIES, SynthConfig, generate_item

N_TRAIN, N_TEST = 1200, 900  # per family
MARGIN = 0.05
DIM = 512


def _hash(token: str) -> int:
    return zlib.crc32(token.encode()) % DIM


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def text_features(item, option_index):
    """Bag of option words, question-word x option-word pairs, option position."""
    vec = np.zeros(DIM + 8)
    option = item.options[option_index]
    for w in _words(option):
        vec[_hash("o:" + w)] += 1
        for q in _words(item.question):
            vec[_hash(f"q:{q}|o:{w}")] += 1
    vec[DIM + option_index] = 1
    return vec


def _scene_for(timeline, option):
    label = option.removeprefix("a ")
    hits = [s for s in timeline.scenes if f"{s.colour} {s.shape}" == label]
    return hits[0] if hits else None


def visual_features(sample, option_index):
    """What the picture alone tells about an option: its scene's timing, order, motion;
    for counts, the asked shape's visible span crossed with the option's value."""
    item, tl = sample.item, sample.timeline
    base = text_features(item, option_index)
    extra = np.zeros(16)
    option = item.options[option_index]
    scene = _scene_for(tl, option)
    if scene is not None:
        rank = tl.scenes.index(scene)
        extra[:7] = [
            (scene.end - scene.start) / 3,
            scene.start / tl.duration,
            rank / len(tl.scenes),
            rank == 0,
            rank == len(tl.scenes) - 1,
            scene.moves,
            1.0,
        ]
    elif option.isdigit():
        label = re.search(r"while the (.+) was visible", item.question).group(1)
        target = _scene_for(tl, "a " + label)
        value = int(option)
        span = (target.end - target.start) / 0.5
        extra[7 + value] = 1
        extra[12] = value / span
        extra[13] = value * span / 20
    return np.concatenate([base, extra])


def _trains(onsets, gap=1.0):
    trains = []
    for t in onsets:
        if trains and t - trains[-1][-1] < gap:
            trains[-1].append(t)
        else:
            trains.append([t])
    return trains


def audio_features(sample, option_index):
    """What the sound track alone tells: sound timing, beep totals and clustering."""
    item, tl = sample.item, sample.timeline
    base = text_features(item, option_index)
    extra = np.zeros(26)
    beeps = [s.start for s in tl.sounds if s.kind == "beep"]
    option = item.options[option_index]
    if option.isdigit():
        value = int(option)
        densest = max((sum(1 for b in beeps if t <= b < t + 2.0) for t in np.arange(0, tl.duration, 0.5)), default=0)
        extra[value] = 1
        extra[5 + value] = len(beeps) / 8
        extra[10 + value] = densest / 4
        extra[15] = value == densest
        extra[16] = value == len(beeps)
        extra[17] = value / max(len(beeps), 1)
        # beep trains (runs with < 1 s between onsets): how often a train of `value` beeps occurs
        trains = _trains(beeps)
        extra[18] = sum(len(t) == value for t in trains) / max(len(trains), 1)
        extra[19] = value == max((len(t) for t in trains), default=0)
    else:
        anchors = [s for s in tl.sounds if s.kind in item.question]
        onset = anchors[0].start / tl.duration if anchors else 0.0
        extra[20 + option_index] = onset
        extra[25] = len(tl.sounds) / 10
    return np.concatenate([base, extra])


def fit_conditional_logit(groups, labels, l2=1e-2, steps=300, lr=0.5):
    """Softmax over each item's options, weights shared across options (numpy, full-batch GD)."""
    X = np.stack(groups)  # (items, options, features)
    mean, std = X.reshape(-1, X.shape[-1]).mean(0), X.reshape(-1, X.shape[-1]).std(0) + 1e-6
    X = (X - mean) / std
    w = np.zeros(X.shape[-1])
    y = np.asarray(labels)
    for _ in range(steps):
        logits = X @ w
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(len(y)), y] -= 1
        grad = np.einsum("io,iof->f", p, X) / len(y) + l2 * w
        w -= lr * grad
    return lambda G: ((np.stack(G) - mean) / std @ w).argmax(1)


@pytest.fixture(scope="module")
def data():
    config = SynthConfig(families=CROSS_MODAL_FAMILIES)
    k = len(CROSS_MODAL_FAMILIES)
    train = [generate_item("train", i, config) for i in range(N_TRAIN * k)]
    test = [generate_item("dev", i, config) for i in range(N_TEST * k)]
    return train, test


def _label(sample):
    return "ABCDE".index(sample.item.answer)


@pytest.mark.parametrize("family", CROSS_MODAL_FAMILIES)
def test_majority_letter_and_majority_text_are_at_chance(data, family):
    train, test = ([s for s in split if s.item.category == family] for split in data)
    chance = 1 / len(test[0].item.options)
    letters = [s.item.answer for s in train]
    majority = max(set(letters), key=letters.count)
    assert np.mean([s.item.answer == majority for s in test]) <= chance + MARGIN
    # the most frequent correct option TEXT, picked whenever it is offered
    texts = [s.item.options[_label(s)] for s in train]
    ranking = {t: texts.count(t) for t in set(texts)}
    picks = [max(range(len(s.item.options)), key=lambda i: ranking.get(s.item.options[i], 0)) for s in test]
    assert np.mean([p == _label(s) for p, s in zip(picks, test)]) <= chance + MARGIN


@pytest.mark.parametrize("name,features", [("text", None), ("visual", visual_features), ("audio", audio_features)])
def test_learned_baselines_are_near_chance_on_cross_modal_families(data, name, features):
    train, test = data
    featurise = (lambda s, i: text_features(s.item, i)) if features is None else features
    for family in CROSS_MODAL_FAMILIES:
        tr = [s for s in train if s.item.category == family]
        te = [s for s in test if s.item.category == family]
        n_opt = len(tr[0].item.options)
        predict = fit_conditional_logit(
            [np.stack([featurise(s, i) for i in range(n_opt)]) for s in tr], [_label(s) for s in tr]
        )
        accuracy = float(np.mean(predict([np.stack([featurise(s, i) for i in range(n_opt)]) for s in te]) == [_label(s) for s in te]))
        assert accuracy <= 1 / n_opt + MARGIN, (name, family, accuracy)


def test_a_multimodal_oracle_feature_solves_it(data):
    """Sanity check of the probe: given the cross-modal fact, the same learner is near perfect."""
    train, test = data

    def oracle(sample, i):
        tl, item = sample.timeline, sample.item
        sound = [s for s in tl.sounds if s.kind in item.question][0]
        scene = _scene_for(tl, item.options[i])
        return np.array([float(scene is not None and scene.start <= sound.start < scene.end), 1.0])

    tr = [s for s in train if s.item.category == "cross_modal_alignment"]
    te = [s for s in test if s.item.category == "cross_modal_alignment"]
    predict = fit_conditional_logit([np.stack([oracle(s, i) for i in range(4)]) for s in tr], [_label(s) for s in tr])
    assert np.mean(predict([np.stack([oracle(s, i) for i in range(4)]) for s in te]) == [_label(s) for s in te]) > 0.95
