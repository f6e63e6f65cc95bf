"""Attachments: type checked by magic bytes, size-limited, stored under opaque names, thumbnailed.

The client's file name is only a label: it is checked (no path separators, no `..`, no control
characters) and kept for display, but the file on disk is named `<uuid>.<ext>` from the sniffed
type, so no name can reach outside the upload folder. Markup is refused outright: SVG and HTML
can carry script that a browser runs on our origin (stored XSS through an attachment).
"""

from __future__ import annotations

import io
import re
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from cloud.io.private import private_dir

DEFAULT_MAX_UPLOAD_BYTES = 8 * 1024 * 1024
THUMB_PX = 320
# Decompression bombs: a 20 k x 20 k PNG is a few KB on the wire and 1.6 GB in memory.
MAX_IMAGE_PIXELS = 40_000_000

# (magic prefix, MIME type, extension); checked in order. WebP is RIFF....WEBP, see `sniff`.
_MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
    (b"GIF87a", "image/gif", "gif"),
    (b"GIF89a", "image/gif", "gif"),
    (b"%PDF-", "application/pdf", "pdf"),
)
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_MARKUP = re.compile(rb"<\s*(svg|html|script|!doctype|iframe|body|\?xml)", re.IGNORECASE)
_SAFE_NAME = re.compile(r"^[^\x00-\x1f/\\:*?\"<>|]{1,120}$")


class UploadRefusedError(ValueError):
    """An upload we do not store; `reason` says why, `status` is the HTTP status to answer."""

    def __init__(self, reason: str, status: int = 415) -> None:
        self.reason = reason
        self.status = status
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class StoredFile:
    id: str
    name: str
    mime: str
    size: int
    path: Path
    thumb_path: Path | None

    @property
    def is_image(self) -> bool:
        return self.mime in IMAGE_TYPES


def check_name(name: str) -> str:
    """The display name, or UploadRefusedError for anything path-like."""
    if not _SAFE_NAME.match(name) or name in {".", ".."} or ".." in name or name != name.strip():
        raise UploadRefusedError(
            f"file name {name!r} is not allowed (no paths, '..' or control characters)", 422
        )
    return name


def sniff(data: bytes) -> tuple[str, str]:
    """(MIME type, extension) from the content's first bytes; refuses markup and unknown types."""
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    if _MARKUP.search(head[:512]) or head.startswith(b"<"):
        raise UploadRefusedError("SVG, HTML and other markup are refused (they can carry script)")
    for magic, mime, ext in _MAGIC:
        if data.startswith(magic):
            return mime, ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    raise UploadRefusedError("only JPEG, PNG, GIF, WebP photos and PDF documents are accepted")


def _too_large(pixels: int | str) -> UploadRefusedError:
    shown = f"{pixels:,}" if isinstance(pixels, int) else pixels
    return UploadRefusedError(f"image is {shown} pixels; the limit is {MAX_IMAGE_PIXELS:,}", 413)


def _thumbnail(data: bytes, dest: Path) -> None:
    try:
        # Pillow only warns between its limit and twice it; here any bomb is an error.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                if probe.width * probe.height > MAX_IMAGE_PIXELS:  # read from the header, not decoded
                    raise _too_large(f"{probe.width} x {probe.height}")
                probe.verify()  # a truncated or forged image stops here, before it is decoded
            with Image.open(io.BytesIO(data)) as img:
                img.thumbnail((THUMB_PX, THUMB_PX))
                img.convert("RGB").save(dest, "JPEG", quality=80)
    except Image.DecompressionBombError as exc:
        # Beyond twice Pillow's own limit Image.open raises before we see the size (a 20 k x
        # 20 k PNG header): its message holds the pixel count.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_large(int(found.group(1)) if found else "too many") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        if isinstance(exc, UploadRefusedError):
            raise
        raise UploadRefusedError(f"the image cannot be read: {exc}") from None


class UploadStore:
    """Files under `root`, at most `max_bytes` each."""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes
        private_dir(root / "files")
        private_dir(root / "thumbs")

    def save(self, name: str, data: bytes) -> StoredFile:
        label = check_name(name)
        if len(data) > self.max_bytes:
            raise UploadRefusedError(f"file is {len(data):,} bytes; the limit is {self.max_bytes:,}", 413)
        if not data:
            raise UploadRefusedError("file is empty", 422)
        mime, ext = sniff(data)
        file_id = uuid.uuid4().hex
        path = self.root / "files" / f"{file_id}.{ext}"
        thumb: Path | None = None
        if mime in IMAGE_TYPES:
            thumb = self.root / "thumbs" / f"{file_id}.jpg"
            _thumbnail(data, thumb)
        path.write_bytes(data)
        return StoredFile(file_id, label, mime, len(data), path, thumb)

    def path_of(self, file_id: str, ext: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{32}", file_id):
            raise UploadRefusedError(f"no file {file_id!r}", 404)
        return self.root / "files" / f"{file_id}.{ext}"
