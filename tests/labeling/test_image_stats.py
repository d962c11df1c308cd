import io

import pytest
from django.core.exceptions import ValidationError
from PIL import Image

from labeling import images, services
from labeling.models import ImageStatsStatus, Item
from provenance.models import Event
from tests.conftest import png_bytes


def test_stats_of_a_uniform_image_are_its_size_and_gray_level():
    data = png_bytes(40, 30, color=(100, 100, 100))
    stats = images.compute_stats(data, max_bytes=10**6, max_pixels=10**6)
    assert (stats.width, stats.height) == (40, 30)
    assert stats.mean_brightness == pytest.approx(100.0)
    assert len(stats.perceptual_hash) == 16
    assert stats.format == "PNG"


def test_mean_brightness_matches_a_hand_computed_half_black_half_white_image():
    image = Image.new("L", (10, 10), 0)
    image.paste(255, (0, 0, 10, 5))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    stats = images.compute_stats(buffer.getvalue(), max_bytes=10**6, max_pixels=10**6)
    assert stats.mean_brightness == pytest.approx(127.5)


def test_decompression_bomb_is_refused_with_its_pixel_count():
    data = png_bytes(2000, 2000)
    with pytest.raises(images.ImageRejected, match="4000000 pixels; the limit is 1000000"):
        images.open_checked(data, max_bytes=10**7, max_pixels=1_000_000)


def test_too_many_bytes_is_refused_before_decoding():
    with pytest.raises(images.ImageRejected, match="the limit is 10 bytes"):
        images.open_checked(png_bytes(), max_bytes=10, max_pixels=10**6)


def test_non_image_bytes_are_refused():
    with pytest.raises(images.ImageRejected, match="not a readable image"):
        images.open_checked(b"<svg onload=alert(1)>", max_bytes=10**6, max_pixels=10**6)


def test_near_duplicate_images_have_close_difference_hashes():
    base = Image.linear_gradient("L").resize((64, 64))
    tweaked = base.point(lambda v: min(255, v + 3))

    def dhash(img):
        return int(images.difference_hash(img), 16)

    assert bin(dhash(base) ^ dhash(tweaked)).count("1") <= 4


@pytest.mark.django_db
def test_storing_an_image_item_computes_stats_and_thumbnail_through_the_task(
    project, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        item = services.create_image_item(
            project=project, external_id="img-1", image_bytes=png_bytes(300, 200, (200, 10, 10))
        )
    assert len(callbacks) == 1
    item.refresh_from_db()
    assert item.stats_status == ImageStatsStatus.DONE
    assert (item.width, item.height) == (300, 200)
    assert item.mean_brightness == pytest.approx(0.299 * 200 + 0.587 * 10 + 0.114 * 10, abs=1)
    assert item.thumbnail
    with item.thumbnail.open("rb") as fh:
        assert max(Image.open(fh).size) <= 256
    assert Event.objects.filter(verb="item.image_stats", item_id_ref=item.pk).exists()


@pytest.mark.django_db
def test_an_oversized_image_is_rejected_and_nothing_is_stored(project, settings):
    settings.CONCORD_MAX_IMAGE_PIXELS = 100
    with pytest.raises(ValidationError, match="the limit is 100 pixels"):
        services.create_image_item(project=project, external_id="big", image_bytes=png_bytes())
    assert not Item.objects.filter(external_id="big").exists()
