import pytest
import torch

from stillmotion.tasks.metrics import average_by_group, box_iou, depth_errors, mean_iou, point_tracking, topk_accuracy


def test_topk_accuracy_by_hand():
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.1, 0.4], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 2, 0])
    assert topk_accuracy(scores, labels, 1) == pytest.approx(1 / 3)
    assert topk_accuracy(scores, labels, 2) == pytest.approx(2 / 3)  # row 1: {0, 2} holds 2; row 2: {2, 1} lacks 0
    assert topk_accuracy(scores, labels, 5) == pytest.approx(1.0)  # k above the class count: every class


def test_scores_of_a_videos_clips_are_averaged():
    scores = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 3.0]])
    mean, keys = average_by_group(scores, ["a", "b", "a", "b"])
    assert keys == ["a", "b"]
    assert torch.equal(mean, torch.tensor([[0.5, 0.5], [0.5, 2.0]]))


def test_box_iou_and_mean_iou_by_hand():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 6.0, 6.0]])
    assert torch.allclose(box_iou(a, b), torch.tensor([1 / 7, 1.0, 0.0]))
    assert mean_iou(a, b) == pytest.approx((1 / 7 + 1) / 3)
    assert mean_iou(a, b, torch.tensor([True, True, False])) == pytest.approx((1 / 7 + 1) / 2)


def test_average_jaccard_on_a_hand_made_track():
    # one point over 4 frames; truth visible, visible, occluded, visible
    true = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [20.0, 0.0], [30.0, 0.0]]])
    true_vis = torch.tensor([[True, True, False, True]])
    pred = torch.tensor([[[0.0, 0.5], [10.0, 3.0], [20.0, 0.0], [30.0, 10.0]]])  # off by 0.5, 3, 0, 10 px
    pred_vis = torch.tensor([[True, True, True, False]])
    m = point_tracking(pred, pred_vis, true, true_vis)
    # d = 1, 2: TP frame 0; FP frames 1 (too far), 2 (occluded); FN frames 1 (too far), 3 (predicted occluded): 1/5
    # d = 4, 8, 16: TP frames 0, 1; FP frame 2; FN frame 3: 2/4
    assert m["average_jaccard"] == pytest.approx((0.2 + 0.2 + 0.5 + 0.5 + 0.5) / 5)
    # visible frames 0, 1, 3 within d: 1/3, 1/3, 2/3, 2/3, 3/3
    assert m["position_accuracy"] == pytest.approx((1 / 3 + 1 / 3 + 2 / 3 + 2 / 3 + 1) / 5)
    assert m["occlusion_accuracy"] == pytest.approx(0.5)


def test_depth_abs_rel_and_delta1_by_hand():
    pred = torch.tensor([1.0, 2.0, 4.0, 9.0])
    true = torch.tensor([1.0, 1.0, 5.0, 0.0])  # the last pixel has no depth and is left out
    m = depth_errors(pred, true)
    assert m["abs_rel"] == pytest.approx((0 + 1 + 0.2) / 3)
    assert m["delta1"] == pytest.approx(1 / 3)  # ratios 1, 2 and exactly 1.25 (not below it)
