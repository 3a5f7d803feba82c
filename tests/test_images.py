"""Start image handling: buckets, crop, alpha, grayscale."""

import numpy as np
import pytest
import torch

from hyv_pack.hunyuan_i2v.errors import UserInputError
from hyv_pack.hunyuan_i2v.hunyuan_video_13b import defaults, family
from hyv_pack.hunyuan_i2v.shared import images


def choose_13b_bucket(width, height, resolution):
    """The 13 B model's bucket for an image of width x height at a quality level."""
    return images.choose_bucket(width, height, defaults.RESOLUTIONS[resolution], defaults.BUCKET_GRID)


@pytest.mark.parametrize("bucket,base", [("720p", 960), ("540p", 720), ("360p", 480)])
@pytest.mark.parametrize("width,height", [(1920, 1080), (1080, 1920), (1000, 1000), (3000, 1000)])
def test_bucket_follows_aspect_ratio_on_the_grid(bucket, base, width, height):
    assert defaults.RESOLUTIONS[bucket] == base
    w, h = choose_13b_bucket(width, height, bucket)
    assert w % 32 == 0 and h % 32 == 0
    assert 0.85 * base**2 <= w * h <= 1.0 * base**2
    assert abs(np.log((w / h) / (width / height))) < 0.12


def test_landscape_720p_bucket():
    # 720 is not on the 32 px grid; the closest aspect ratio with ~960^2 pixels is 1280x704.
    assert choose_13b_bucket(1280, 720, "720p") == (1280, 704)
    assert choose_13b_bucket(720, 1280, "720p") == (704, 1280)
    # and the family's video size, which the Encode node uses, picks the same from an image
    assert family.video_size(torch.zeros(1, 720, 1280, 3), "720p", 0, 0) == (1280, 704)
    assert family.video_size(torch.zeros(1, 1280, 720, 3), "720p", 0, 0) == (704, 1280)


def test_resize_covers_and_crops_the_centre():
    image = torch.zeros(1, 100, 300, 3)
    image[:, :, 100:200] = 1.0  # a white band in the middle third
    start = images.prepare_start_image(image, width=96, height=96)
    assert start.tensor.shape == (1, 96, 96, 3)
    assert start.tensor[0, 48, 48].min() > 0.95  # the centre survived the crop


def test_alpha_is_composited_on_white():
    rgba = torch.zeros(1, 16, 16, 4)  # black, fully transparent
    start = images.prepare_start_image(rgba, width=16, height=16)
    assert torch.allclose(start.tensor, torch.ones(1, 16, 16, 3))


def test_grayscale_is_expanded_to_rgb():
    gray = torch.full((1, 16, 16, 1), 0.5)
    start = images.prepare_start_image(gray, width=16, height=16)
    assert start.tensor.shape == (1, 16, 16, 3)
    assert torch.allclose(start.tensor, torch.full((1, 16, 16, 3), 128 / 255))


def test_width_without_height_is_refused():
    with pytest.raises(UserInputError, match="both width and height"):
        family.video_size(torch.rand(1, 16, 16, 3), "720p", width=16, height=0)


def test_unknown_bucket():
    with pytest.raises(UserInputError, match=r"resolutions 720p, 540p, 360p; '1080p' is not one of them"):
        family.video_size(torch.rand(1, 10, 10, 3), "1080p", 0, 0)


def test_small_start_image_is_warned_about():
    assert "upscaled" in images.small_image_warning(torch.rand(1, 8, 8, 3), 64, 64)
    assert images.small_image_warning(torch.rand(1, 480, 640, 3), 1280, 960) is None


def test_image_file_keeps_alpha_and_turns_photos_upright(tmp_path):
    from PIL import Image

    rgba = Image.new("RGBA", (6, 4), (255, 0, 0, 0))
    rgba.save(tmp_path / "alpha.png")
    assert images.load_image_file(tmp_path / "alpha.png").shape == (1, 4, 6, 4)
    photo = Image.new("RGB", (6, 4), (0, 0, 255))
    exif = photo.getexif()
    exif[0x0112] = 6  # Orientation: rotated 90 degrees, as phones save portrait photos
    photo.save(tmp_path / "photo.jpg", exif=exif)
    assert images.load_image_file(tmp_path / "photo.jpg").shape == (1, 6, 4, 3)


def test_damaged_image_file_is_refused(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 90).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserInputError, match="could not be decoded.*damaged"):
        images.load_image_file(tmp_path / "cut.png")
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(UserInputError, match="not an image file"):
        images.load_image_file(tmp_path / "notes.png")


def test_no_torchvision_notice_when_the_pipeline_module_is_imported():
    """diffusers' 1.5 pipeline imports SiglipImageProcessor by name; without torchvision transformers would say so."""
    import subprocess
    import sys

    from conftest import ROOT

    script = ("import hunyuan_i2v.shared.images; "
              "import diffusers.pipelines.hunyuan_video1_5.pipeline_hunyuan_video1_5_image2video")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "torchvision" not in result.stderr
