"""Console attachments: only photos and PDFs, by content; no markup, no paths, no bombs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from cloud.console.uploads import UploadRefusedError, UploadStore, sniff

from support import png_header


def _image(fmt: str, size: tuple[int, int] = (800, 600), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, 128 if mode != "RGB" else (0, 158, 115)).save(out, fmt)
    return out.getvalue()


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture
def uploads(tmp_path: Path) -> UploadStore:
    return UploadStore(tmp_path / "up", max_bytes=256 * 1024)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
def test_a_photo_is_stored_under_an_opaque_name_with_a_thumbnail(uploads: UploadStore, fmt: str) -> None:
    f = uploads.save("tombino rotto.photo", _image(fmt))
    assert f.name == "tombino rotto.photo"
    assert f.path.parent == uploads.root / "files"
    assert f.path.name == f"{f.id}.{f.path.suffix[1:]}"
    assert f.is_image
    assert f.thumb_path is not None
    with Image.open(f.thumb_path) as thumb:
        assert max(thumb.size) <= 320


def test_a_pdf_document_is_stored_without_a_thumbnail(uploads: UploadStore) -> None:
    f = uploads.save("ordinanza.pdf", PDF)
    assert f.mime == "application/pdf"
    assert f.thumb_path is None
    assert f.path.read_bytes() == PDF


@pytest.mark.parametrize(
    "content",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>',
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>',
        b"\xef\xbb\xbf  <!DOCTYPE html><html><body><script>alert(1)</script>",
        b"\n\n<html><img src=x onerror=alert(1)>",
        b"<ScRiPt>alert(1)</ScRiPt>",
    ],
    ids=["svg-script", "svg-xml", "html-bom", "html-leading-newlines", "script"],
)
def test_script_bearing_svg_and_html_are_refused_whatever_their_name(
    uploads: UploadStore, content: bytes
) -> None:
    with pytest.raises(UploadRefusedError, match="markup") as refused:
        uploads.save("photo.jpg", content)
    assert refused.value.status == 415
    assert not list((uploads.root / "files").iterdir())


@pytest.mark.parametrize(
    "content",
    [b"MZ\x90\x00\x03" + bytes(100), b"PK\x03\x04 a zip or docx", b"#!/bin/sh\nrm -rf /\n", b"plain text"],
    ids=["exe", "zip", "script", "text"],
)
def test_a_file_of_another_type_is_refused_even_named_as_a_photo(
    uploads: UploadStore, content: bytes
) -> None:
    with pytest.raises(UploadRefusedError, match="only JPEG"):
        uploads.save("foto.jpg", content)


def test_a_forged_image_with_only_a_valid_header_is_refused(uploads: UploadStore) -> None:
    with pytest.raises(UploadRefusedError, match="cannot be read"):
        uploads.save("x.png", b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)
    assert not list((uploads.root / "files").iterdir())


def test_a_decompression_bomb_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    store = UploadStore(tmp_path / "up", max_bytes=8 * 1024 * 1024)
    bomb = _image("PNG", (9000, 9000), mode="1")  # 81 M pixels in a few KB
    assert len(bomb) < 100_000
    with pytest.raises(UploadRefusedError, match="pixels"):
        store.save("bomb.png", bomb)


def test_a_png_header_claiming_20000_by_20000_pixels_is_refused_as_too_large(uploads: UploadStore) -> None:
    # 400 M pixels: beyond twice Pillow's own limit, where Image.open raises instead of warning.
    with pytest.raises(UploadRefusedError) as refused:
        uploads.save("bomba.png", png_header(20_000, 20_000))
    assert refused.value.status == 413
    assert "400,000,000 pixels" in refused.value.reason
    assert list((uploads.root / "files").iterdir()) == []


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "..\\..\\boot.ini",
        "/etc/shadow",
        "foto/../../x.jpg",
        "..",
        "a\x00.jpg",
        "a\nb.jpg",
        "",
    ],
)
def test_path_traversal_and_control_character_names_are_refused(uploads: UploadStore, name: str) -> None:
    with pytest.raises(UploadRefusedError, match="not allowed") as refused:
        uploads.save(name, _image("JPEG"))
    assert refused.value.status == 422


def test_an_oversize_file_is_refused(uploads: UploadStore) -> None:
    with pytest.raises(UploadRefusedError, match="limit") as refused:
        uploads.save("big.pdf", PDF + bytes(300 * 1024))
    assert refused.value.status == 413


def test_sniffing_reads_the_content_not_the_name() -> None:
    assert sniff(_image("PNG")) == ("image/png", "png")
    assert sniff(PDF) == ("application/pdf", "pdf")
