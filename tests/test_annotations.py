import numpy as np
import pytest
import torch

from stillmotion.cache.views import ViewParams, Window, augment, view_window
from stillmotion.data.annotations import AnnotationError, load_annotations, save_annotations
from stillmotion.data.manifest import Sample, read_manifest, write_manifest
from stillmotion.data.scenes import SceneConfig, render_scene
from stillmotion.video.transforms import resize_center_crop

TILTED = ViewParams(zoom=1.2, top=0.3, left=0.7, flip=True, brightness=1.0, contrast=1.0, saturation=1.0)


def test_annotation_file_round_trip_and_missing_frames(tmp_path):
    boxes = np.array([[[0.1, 0.2, 0.3, 0.4]], [[np.nan] * 4]], dtype=np.float32)
    path = save_annotations(tmp_path / "a.npz", frames=np.array([2, 5]), boxes=boxes, size=np.array([320, 240]))
    notes = load_annotations(path, need=("boxes",))
    assert notes.size == (320, 240) and notes.frames.tolist() == [2, 5]
    assert notes.rows([5, 3, 2, 9]).tolist() == [1, -1, 0, -1]
    got = notes.take("boxes", [2, 3], np.nan)
    assert got[0, 0].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4]) and np.isnan(got[1]).all()



def test_camera_poses_round_trip(tmp_path):
    turn = np.array([[0.0, -1, 0, 0.5], [1, 0, 0, 0], [0, 0, 1, -2], [0, 0, 0, 1]])  # a quarter about z, moved
    poses = np.stack([np.eye(4), turn])
    path = save_annotations(tmp_path / "p.npz", frames=np.array([3, 4]), poses=poses.astype(np.float32))
    notes = load_annotations(path, need=("poses",))
    assert notes.poses.dtype == np.float64 and np.array_equal(notes.poses, poses)
    got = notes.take("poses", [4, 5], np.nan)
    assert np.array_equal(got[0], turn) and np.isnan(got[1]).all()


@pytest.mark.parametrize("arrays, message", [
    ({"boxes": np.zeros((2, 1, 4))}, "no depth array"),
    ({"depth": np.zeros((2, 4, 4)), "boxes": np.zeros((3, 1, 4))}, "disagree on the number of frames"),
    ({"depth": np.zeros((2, 4, 4)), "frames": np.array([3, 1])}, "increasing"),
    ({"depth": np.zeros((2, 4, 4)), "points": np.zeros((2, 3, 2))}, "needs `visible`"),
    ({"depth": np.zeros((2, 4))}, "`depth` has shape"),
    ({"depth": np.zeros((2, 4, 4)), "poses": np.zeros((2, 3, 4))}, "`poses` has shape"),
    ({"depth": np.zeros((2, 4, 4)), "poses": np.zeros((2, 16))}, "`poses` has shape"),
    ({"depth": np.zeros((2, 4, 4)), "poses": np.tile(np.eye(4), (3, 1, 1))}, "disagree on the number of frames"),
    ({"depth": np.zeros((2, 4, 4)), "poses": np.stack([np.eye(4), np.full((4, 4), np.nan)])}, "`poses` must hold"),
    ({"depth": np.zeros((2, 4, 4)), "poses": np.stack([np.eye(4), 2 * np.eye(4)])}, "`poses` row 1 is not a rigid"),
    ({"depth": np.zeros((2, 4, 4)), "poses": np.stack([np.diag([-1.0, 1, 1, 1]), np.eye(4)])}, "`poses` row 0 is not"),
])
def test_bad_annotation_files_name_the_file_and_the_problem(tmp_path, arrays, message):
    path = save_annotations(tmp_path / "bad.npz", **arrays)
    with pytest.raises(AnnotationError, match=message) as err:
        load_annotations(path, need=("depth",))
    assert str(path) in str(err.value)
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(AnnotationError, match="junk.npz: not a readable"):
        load_annotations(tmp_path / "junk.npz")


def test_manifest_keeps_annotation_paths_relative(tmp_path):
    (tmp_path / "clips").mkdir()
    write_manifest(tmp_path / "m.jsonl", [Sample("a", str(tmp_path / "clips/a.mp4"),
                                                 annotations=str(tmp_path / "clips/a.npz"))])
    assert '"annotations": "clips/a.npz"' in (tmp_path / "m.jsonl").read_text()
    assert read_manifest(tmp_path / "m.jsonl")[0].annotations == str(tmp_path / "clips/a.npz")


def _marker(width: int, height: int, x: int, y: int) -> torch.Tensor:
    frame = torch.zeros(1, 3, height, width, dtype=torch.uint8)
    frame[..., y - 2:y + 2, x - 2:x + 2] = 255
    return frame


def _centroid(crop: torch.Tensor) -> tuple[float, float]:
    weight = crop[0].float().mean(0)
    ys, xs = torch.meshgrid(torch.arange(weight.shape[0]) + 0.5, torch.arange(weight.shape[1]) + 0.5, indexing="ij")
    return (float((weight * xs).sum() / weight.sum()), float((weight * ys).sum() / weight.sum()))


def test_view_window_of_the_centre_crop_by_hand():
    # 340 x 256 at 128: scaled by 0.5 to 170 x 128, then columns 21..149 kept
    w = view_window(340, 256, 128)
    assert w == Window(21 / 170, 0.0, 128 / 170, 1.0, False)
    assert w.points(torch.tensor([0.5, 0.25])).tolist() == pytest.approx([0.5, 0.25])


@pytest.mark.parametrize("params", [None, TILTED])
def test_view_window_puts_a_marker_where_the_crop_shows_it(params):
    width, height, x, y = 340, 256, 230, 90
    frame = _marker(width, height, x, y)
    crop = resize_center_crop(frame, 128) if params is None else augment(frame, 128, params)
    where = view_window(width, height, 128, params).points(torch.tensor([x / width, y / height])) * 128
    assert where.tolist() == pytest.approx(_centroid(crop), abs=1.0)


def test_view_window_boxes_and_dense_maps_follow_the_flip():
    w = Window(0.25, 0.0, 0.5, 1.0, flip=True)
    assert w.boxes(torch.tensor([0.25, 0.1, 0.5, 0.2])).tolist() == pytest.approx([0.5, 0.1, 1.0, 0.2])
    column = torch.arange(8.0).expand(1, 4, 8)  # each pixel holds its column index
    # the view shows columns 2..5 mirrored: at 4 output pixels that is 5, 4, 3, 2
    assert w.dense(column, 4)[0, 0].tolist() == [5.0, 4.0, 3.0, 2.0]


def test_scene_annotations_agree_with_each_other():
    scene = render_scene(SceneConfig(frames=6), "train", 1)
    size = 128
    px = np.clip((scene.points * size).astype(int), 0, size - 1)
    for t in range(6):
        depth_at = scene.depth[t, px[t, :, 1], px[t, :, 0]]
        on_front = depth_at[:6]  # object 0's points: always visible, at object 0's depth
        assert scene.visible[t, :6].all() and np.allclose(on_front, on_front[0]) and on_front[0] < 2.6
        ground = slice(12, None)
        in_view = ((scene.points[t, ground] >= 0) & (scene.points[t, ground] < 1)).all(-1)
        # a background point in view is visible exactly when nothing nearer covers it (the plane is >= 4 m)
        assert (scene.visible[t, ground][in_view] == (depth_at[ground][in_view] >= 4)).all()
        x0, y0, x1, y1 = scene.boxes[t, 0] * size
        assert scene.depth[t, int((y0 + y1) / 2), int((x0 + x1) / 2)] == pytest.approx(on_front[0])
