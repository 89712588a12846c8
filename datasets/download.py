"""Finding a data set, or downloading it verified: keras.utils.get_file checks the zip's SHA-256 or MD5, and the
zip is unpacked through a temporary folder so that a failure leaves nothing half-done."""

import hashlib
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from datasets.lines import DataError


def holds(source, data_dir):
    """Whether data_dir holds the data set (its ratings file, or what source.present looks for)."""
    return source.present(Path(data_dir)) if source.present else (Path(data_dir) / source.ratings_file).exists()


def ensure_dataset(name, source, data_dir):
    """Return data_dir once it holds the data set `name` (described by `source`), downloading and unpacking it
    (verified) if it does not."""
    data_dir = Path(data_dir)
    if holds(source, data_dir):
        return data_dir  # a folder or an unreadable file in its place is reported by the parser, not downloaded over
    if source.url is None:
        raise DataError(f"{name} is not in {data_dir}. {source.missing_help}")
    print(f"{name} not found in {data_dir} (no {source.ratings_file}); downloading {source.url}")
    import keras  # imported here: parsing and splitting do not need it

    download_dir = data_dir.parent
    zip_path = download_dir / Path(source.url).name
    expected = source.checksum
    try:
        download_dir.mkdir(parents=True, exist_ok=True)
        expected = expected or published_md5(source.url, download_dir)
        # get_file shows progress, deletes a partial download and refuses a file whose hash differs.
        keras.utils.get_file(fname=zip_path.name, origin=source.url, file_hash=expected,
                             cache_dir=str(download_dir), cache_subdir=".")
        unpack_dataset(zip_path, source.folder, data_dir, source.ratings_file)
    except Exception as error:  # offline, HTTP error, checksum mismatch, unwritable folder, bad zip
        if expected and zip_path.is_file() and hash_of(zip_path, len(expected)) != expected:
            zip_path.unlink()  # never keep a corrupt or foreign file under the name of the real one
        raise DataError(
            f"{name} is not in {data_dir} (no {source.ratings_file} there) and could not be downloaded "
            f"from {source.url}: {error}\n"
            f"Fix: download and unzip {zip_path.name} yourself and point the program at the folder that holds "
            f"{source.ratings_file} with --data-dir PATH"
            + (f" or the environment variable {source.environment}." if source.environment else ".")) from None
    return data_dir


def published_md5(url, download_dir):
    """The MD5 published next to a zip (url + '.md5', a line 'MD5 (name) = hash' or 'hash name')."""
    import keras

    path = keras.utils.get_file(fname=Path(url).name + ".md5", origin=url + ".md5", cache_dir=str(download_dir),
                                cache_subdir=".")
    words = [word for word in Path(path).read_text().split() if len(word) == 32]
    if not words:
        raise ValueError(f"{path} holds no MD5 hash")
    return words[0]


def unpack_dataset(zip_path, zip_folder, data_dir, marker):
    """Unpack the zip's folder into data_dir through a temporary folder, so a failure leaves nothing half-done;
    `marker`, the file that marks the data set present, moves last."""
    staging = Path(tempfile.mkdtemp(dir=data_dir.parent, prefix=".unpack-"))
    try:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(staging)
        source = staging / zip_folder
        data_dir.mkdir(parents=True, exist_ok=True)
        names = sorted(path.name for path in source.iterdir() if path.is_file())
        for name in sorted(names, key=lambda name: name == marker):
            os.replace(source / name, data_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def hash_of(path, hex_length=64):
    """The file's SHA-256 (hex_length 64) or MD5 (hex_length 32), as keras.utils.get_file checks them."""
    digest = hashlib.sha256() if hex_length == 64 else hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
