"""pass.json + assets -> manifest.json + signature -> the .pkpass zip Wallet installs.

Apple: manifest.json maps every file except manifest.json and signature (lproj strings
included) to its SHA-1 hex; signature is the detached PKCS#7 over the manifest bytes.
`package_pass` is the plain one-shot path (zipfile); `PassPackager` is the service path:
per-program assets are hashed and zip-encoded once, so a member's pass only costs
pass.json, the manifest, one RSA signature and a join of pre-built bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import time
import zipfile
import zlib
from dataclasses import dataclass

RESERVED_NAMES = frozenset({"pass.json", "manifest.json", "signature"})
# Already-compressed formats gain nothing from deflate; pass.json, manifest.json and
# signature are built per pass and small: deflating them saves ~1-2 KB of a ~200 KB pass
# for CPU the hot path would rather spend signing (docs/performance.md).
STORED_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".heic", ".webp", ".zip", ".pkpass")

_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHI")
_END_OF_CENTRAL_DIRECTORY = struct.Struct("<IHHHHIIH")
_OFFSET = struct.Struct("<I")
_ZIP_VERSION = 20  # 2.0: deflate
_MADE_BY_UNIX = 3 << 8 | _ZIP_VERSION
_REGULAR_FILE_0644 = 0o100644 << 16
_UTF8_NAME_FLAG = 0x800


def package_pass(pass_json: dict, files: dict[str, bytes], signer) -> bytes:
    """Complete .pkpass from pass.json, its assets ({"icon.png": b"...", ...}) and a PassSigner."""
    _check_asset_names(files)
    contents = {"pass.json": pass_json_bytes(pass_json), **files}
    manifest = manifest_bytes(contents)
    contents.update({"manifest.json": manifest, "signature": signer.sign(manifest)})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in contents.items():
            method = zipfile.ZIP_STORED if is_stored(name) else zipfile.ZIP_DEFLATED
            archive.writestr(name, data, compress_type=method)
    return buffer.getvalue()


class PassPackager:
    """A program's static assets, hashed and zip-encoded once, for packaging many passes fast."""

    def __init__(self, files: dict[str, bytes]):
        """Pre-build the zip entries (header + data + CRC) and manifest lines of `files`."""
        _check_asset_names(files)
        self._dos_time, self._dos_date = _dos_timestamp(time.localtime())
        self._hashes = {name: hashlib.sha1(data).hexdigest() for name, data in files.items()}
        entries = [self._entry(name, data) for name, data in files.items()]
        self._static_locals, self._static_central = _locals_and_central(entries, offset=0)
        self._static_count = len(entries)

    def package(self, pass_json: dict, signer, extra_files: dict[str, bytes] | None = None) -> bytes:
        """The .pkpass for one pass; `extra_files` are per-pass assets added to the static ones."""
        contents, manifest = self._contents(pass_json, extra_files)
        contents.update({"manifest.json": manifest, "signature": signer.sign(manifest)})
        return self._zip([self._entry(name, data) for name, data in contents.items()])

    def content_digest(self, pass_json: dict, extra_files: dict[str, bytes] | None = None) -> str:
        """SHA-256 of the manifest `package` would sign: equal digests, equal pass contents (a cache key)."""
        return hashlib.sha256(self._contents(pass_json, extra_files)[1]).hexdigest()

    def _contents(self, pass_json: dict, extra_files: dict[str, bytes] | None) -> tuple[dict[str, bytes], bytes]:
        """The per-pass files and the manifest over them and the static assets."""
        extra_files = extra_files or {}
        _check_asset_names(extra_files)
        if not extra_files.keys().isdisjoint(self._hashes):
            raise ValueError(f"extra_files repeat static assets: {sorted(extra_files.keys() & self._hashes)}")
        contents = {"pass.json": pass_json_bytes(pass_json), **extra_files}
        return contents, manifest_bytes(contents, self._hashes)

    def _entry(self, name: str, data: bytes) -> _ZipEntry:
        """One zip member, stamped with this packager's modification time."""
        return _ZipEntry.encode(name, data, self._dos_time, self._dos_date)

    def _zip(self, per_pass_entries: list[_ZipEntry]) -> bytes:
        """Static entries first (fixed offsets), then this pass's entries, directory, end record."""
        locals_, central = _locals_and_central(per_pass_entries, offset=len(self._static_locals))
        directory_offset = len(self._static_locals) + len(locals_)
        directory_size = len(self._static_central) + len(central)
        count = self._static_count + len(per_pass_entries)
        end = _END_OF_CENTRAL_DIRECTORY.pack(0x06054B50, 0, 0, count, count, directory_size, directory_offset,
                                             0)
        return b"".join((self._static_locals, locals_, self._static_central, central, end))


@dataclass(frozen=True, slots=True)
class _ZipEntry:
    """A zip member's local record (header + data) and its central record minus the offset."""

    local: bytes
    central_head: bytes
    name: bytes

    @classmethod
    def encode(cls, name: str, data: bytes, dos_time: int, dos_date: int) -> _ZipEntry:
        """Compress (or store) `data` and build both headers for it."""
        stored = is_stored(name)
        payload = data if stored else _deflate(data)
        raw_name = name.encode("utf-8")
        flags = 0 if name.isascii() else _UTF8_NAME_FLAG
        fields = (_ZIP_VERSION, flags, 0 if stored else 8, dos_time, dos_date,
                  zlib.crc32(data), len(payload), len(data), len(raw_name))
        if len(data) >= 0xFFFFFFFF:
            raise ValueError(f"{name}: too large for a .pkpass")
        local = _LOCAL_HEADER.pack(0x04034B50, *fields, 0) + raw_name + payload
        central_head = _CENTRAL_HEADER.pack(0x02014B50, _MADE_BY_UNIX, *fields, 0, 0, 0, 0, _REGULAR_FILE_0644)
        return cls(local, central_head, raw_name)

    def central(self, offset: int) -> bytes:
        """Central directory record for this entry stored at `offset`."""
        return self.central_head + _OFFSET.pack(offset) + self.name


def pass_json_bytes(pass_json: dict) -> bytes:
    """pass.json as compact UTF-8 JSON."""
    return json.dumps(pass_json, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def manifest_bytes(contents: dict[str, bytes], known_hashes: dict[str, str] | None = None) -> bytes:
    """manifest.json: SHA-1 hex of each file in `contents` plus already-computed `known_hashes`."""
    hashes = {name: hashlib.sha1(data).hexdigest() for name, data in contents.items()}
    return json.dumps({**hashes, **(known_hashes or {})}, separators=(",", ":")).encode("ascii")


def is_stored(name: str) -> bool:
    """True for members written uncompressed (images, other compressed data, per-pass files)."""
    return name in RESERVED_NAMES or name.lower().endswith(STORED_SUFFIXES)


def _locals_and_central(entries: list[_ZipEntry], offset: int) -> tuple[bytes, bytes]:
    """Concatenated local records and their central records, the first starting at `offset`."""
    central = []
    for entry in entries:
        central.append(entry.central(offset))
        offset += len(entry.local)
    return b"".join(entry.local for entry in entries), b"".join(central)


def _deflate(data: bytes) -> bytes:
    """Raw deflate with a small window: pass assets are a few KB, and setup cost dominates."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -11, 2)
    return compressor.compress(data) + compressor.flush()


def _dos_timestamp(moment: time.struct_time) -> tuple[int, int]:
    """MS-DOS (time, date) fields as zip headers carry them."""
    dos_time = moment.tm_hour << 11 | moment.tm_min << 5 | moment.tm_sec // 2
    dos_date = (max(moment.tm_year, 1980) - 1980) << 9 | moment.tm_mon << 5 | moment.tm_mday
    return dos_time, dos_date


def _check_asset_names(files: dict[str, bytes]) -> None:
    """Reject names the packager writes itself and paths that escape the pass folder."""
    for name in files:
        if name in RESERVED_NAMES:
            raise ValueError(f"{name} is written by the packager; pass it as pass_json, not in files")
        if not name or name.startswith("/") or "\\" in name or ".." in name.split("/"):
            raise ValueError(f"{name!r} is not a relative path inside the pass")
