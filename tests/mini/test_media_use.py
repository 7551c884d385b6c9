"""The media-swap diagnostic scores each item with its own and with another clip's media."""

from __future__ import annotations

from salmonn_o1.checkpoints import load_model_and_processor
from salmonn_o1.data.synthetic.dataset import generate_item
from salmonn_o1_mini.media_use import item_loss, media_swap_report


def test_the_loss_depends_on_which_clip_is_shown_and_the_report_is_consistent():
    model, processor = load_model_and_processor("tiny")
    model.eval()
    a, b = generate_item("dev", 0), generate_item("dev", 1)
    size = model.config.image_size
    fa, fb = (processor.media_features(s.render(size=size)) for s in (a, b))
    own, other = item_loss(model, processor, a.item, fa), item_loss(model, processor, a.item, fb)
    assert own > 0 and other > 0 and own != other
    report = media_swap_report(model, processor, n=3)
    assert report["items"] == 3 and 0.0 <= report["share_hurt_by_swap"] <= 1.0
    assert report["own_media_loss"] > 0 and report["swapped_media_loss"] > 0
