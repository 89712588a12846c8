"""The line-validation toolkit that every reader shares: a file's bytes refused when unusable, each line's fields
counted before any is interpreted, numbers parsed and every bad value named by file, line and fix."""

import csv
import io
from pathlib import Path

import numpy as np


class DataError(Exception):
    """A problem with the data that the user can fix; the message says what and how."""


def read_bytes(path, source_hint):
    """The file's bytes, refused with a clear message if it is a folder, unreadable, empty or not text. A UTF-8
    byte-order mark is dropped and blank lines at the end are allowed."""
    path = Path(path)
    fix = f"Fix: {source_hint}"
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a file. {fix}")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path} cannot be read ({error.strerror}). Fix: make it readable (chmod a+r), or "
                        f"{source_hint[0].lower() + source_hint[1:]}") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if raw.startswith((b"\x1f\x8b", b"PK\x03\x04", b"BZh", b"\xfd7zXZ")):
        raise DataError(f"{path} is a compressed file (gzip, zip, bzip2 or xz), not text. Fix: unpack it first "
                        f"(e.g. gunzip, unzip) and give the unpacked file.")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw[:4096]:
        raise DataError(f"{path} contains NUL bytes: it is not latin-1 text (UTF-16?). Fix: re-save it as latin-1 "
                        f"or UTF-8, or {source_hint[0].lower() + source_hint[1:]}")
    raw = raw.rstrip(b"\r\n\t ")
    if not raw:
        raise DataError(f"{path} is empty. {fix}")
    return raw + b"\n"

def line_text(raw, line_number):
    """The text of one line (1-based) of a file's bytes, for error messages."""
    start = 0
    for _ in range(line_number - 1):
        start = raw.index(b"\n", start) + 1
    end = raw.find(b"\n", start)
    line = raw[start:end if end >= 0 else None].rstrip(b"\r")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        text = line.decode("latin-1")
    return text if len(text) <= LONGEST_QUOTE else f"{text[:LONGEST_QUOTE]}... ({len(text):,} characters)"


LONGEST_QUOTE = 200  # characters of a bad line that an error quotes

def bad_line(path, raw, line_number, problem, source_hint):
    raise DataError(f"{path}, line {line_number}: {problem}: {line_text(raw, line_number)!r}. Fix: correct or "
                    f"delete that line, or {source_hint[0].lower() + source_hint[1:]}")

def check_field_counts(path, original, raw, sep, fewest, most, names, source_hint, first_line=1,
                       line_of=lambda line: line, chunk_bytes=1 << 25):
    """Every line of `raw` (from `first_line`) must have between `fewest` and `most` `sep`-separated fields.
    Checked on the bytes, in chunks, before any column is interpreted, so that nothing can shift silently; an
    error quotes the line of `original` (the file before '::' became `sep`), line_of(n) being the line of
    `original` that is line n of `raw`."""
    array = np.frombuffer(raw, dtype=np.uint8)
    start, line_offset = 0, 0
    while start < len(array):
        end = min(start + chunk_bytes, len(array))
        end = raw.index(b"\n", end - 1) + 1  # the chunk ends with a whole line (raw ends with a newline)
        chunk = array[start:end]
        line_ends = np.flatnonzero(chunk == 10)
        separators = np.flatnonzero(chunk == ord(sep))
        counts = np.bincount(np.searchsorted(line_ends, separators), minlength=len(line_ends)) + 1
        lengths = np.diff(line_ends, prepend=-1) - 1
        blank = (lengths == 0) | ((lengths == 1) & (chunk[np.maximum(line_ends - 1, 0)] == 13))
        bad = (counts < fewest) | (counts > most) | blank
        bad[: max(first_line - 1 - line_offset, 0)] = False
        if bad.any():
            index = int(np.argmax(bad))
            line_number = line_of(line_offset + index + 1)
            if blank[index]:
                bad_line(path, original, line_number, "a blank line", source_hint)
            expected = f"{fewest}" if fewest == most else f"{fewest} or {most}"
            bad_line(path, original, line_number, f"{counts[index]} fields where {expected} ({'|'.join(names)}) are "
                     f"expected, separated by {sep!r}", source_hint)
        line_offset += len(line_ends)
        start = end

def read_numeric_table(path, sep, names, dtypes, source_hint, optional=0, header=False, replace=None):
    """A separator-delimited file of numbers as (DataFrame with the given dtypes, the file's bytes as parsed), one
    row per line after the header line. Field counts are checked on every line first; a value that is not a number
    names its line. `replace` (e.g. '::') is turned into `sep` first, so pandas' fast C parser can read it."""
    original = raw = read_bytes(path, source_hint)  # messages quote the original text of a line
    if replace:
        if sep.encode() in raw:
            line_number = raw[: raw.index(sep.encode())].count(b"\n") + 1
            bad_line(path, raw, line_number, f"a {sep!r} character (fields are separated by {replace!r})",
                     source_hint)
        raw = raw.replace(replace.encode(), sep.encode())
    check_field_counts(path, original, raw, sep, len(names) - optional, len(names), names, source_hint,
                       first_line=2 if header else 1)
    import pandas as pd

    options = dict(sep=sep, header=None, names=names, skiprows=1 if header else 0, quoting=csv.QUOTE_NONE,
                   encoding="latin-1", index_col=False)
    try:
        return pd.read_csv(io.BytesIO(raw), dtype=dtypes, **options), original
    except (ValueError, OverflowError):  # a field that is not a number of its column's type: find the line
        frame = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, **options)
    for name, dtype in dtypes.items():
        text = frame[name].fillna("")
        values = pd.to_numeric(text.replace("", np.nan), errors="coerce").to_numpy(dtype=np.float64)
        integer = np.issubdtype(np.dtype(dtype), np.integer)
        may_be_missing = name in names[len(names) - optional:]
        too_large = integer & (np.abs(values) >= 2.0 ** 63)
        wrong = (np.isnan(values) & ~(may_be_missing & (text == "").to_numpy())) | too_large | (
            integer & ~np.isnan(values) & (values != np.round(values)))
        if wrong.any():
            row = int(np.argmax(wrong))
            problem = (f"{name} is too large (at most 2^63 - 1)" if too_large[row] else
                       f"{name} is not {'an integer' if integer else 'a number'}")
            bad_line(path, original, row + (2 if header else 1), problem, source_hint)
    raise DataError(f"{path} could not be parsed. Fix: {source_hint}")

def validate_ratings(path, raw, first_data_line, user_ids, item_ids, ratings, scale, names, source_hint):
    """Ids must be integers of 1 or more, ratings on the data set's scale (whole or half stars)."""
    low, high, step = scale
    finite = np.isfinite(ratings)  # pandas reads 'NA' and an empty field as NaN
    steps = np.where(finite, ratings, 0) / step
    off_scale = (ratings < low) | (ratings > high) | (np.abs(steps - np.round(steps)) > 1e-6) | ~finite
    on_scale = f"{low:g}-{high:g}" + (f" in steps of {step:g}" if step != 1 else "")
    for name, values, bad, allowed in [(names[0], user_ids, user_ids < 1, "1 or more"),
                                       (names[1], item_ids, item_ids < 1, "1 or more"),
                                       (names[2], ratings, off_scale, on_scale)]:
        if bad.any():
            row = int(np.argmax(bad))
            value = f"{values[row]:g}" if name == names[2] else str(values[row])
            problem = (f"{name} is missing or not a number" if name == names[2] and not np.isfinite(values[row])
                       else f"{name} {value} is not {allowed}")
            bad_line(path, raw, row + first_data_line, problem, source_hint)

def find_all(raw, byte):
    """Positions of every occurrence of one byte."""
    return np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == byte[0]).tolist()


def read_titles(path, hint, sep, header=False, fields=None, maxsplit=-1, title_field=1, quoted=False):
    """{item id: title} from a titles file whose ids are integers, or {} with a warning if it is missing (titles
    only label recommendations). `quoted` reads quoted fields (separators inside titles); `maxsplit` keeps the
    separator inside titles that come last; `fields`, where given, is the exact number of fields of every line."""
    path = Path(path)
    if not path.exists():
        print(f"Warning: {path} not found; recommendations will show movie ids instead of titles.")
        return {}
    raw = read_bytes(path, hint)
    lines = raw.decode("latin-1").split("\n")[:-1]
    if quoted:
        rows = list(csv.reader(lines, delimiter=sep))
    else:
        rows = [line.rstrip("\r").split(sep, maxsplit) for line in lines]
    titles = {}
    first = 1 if header else 0
    for number, row in enumerate(rows[first:], start=first + 1):
        if (fields and len(row) != fields) or len(row) <= title_field:
            bad_line(path, raw, number, f"{len(row)} fields where {fields or title_field + 1} are expected", hint)
        try:
            titles[int(row[0])] = row[title_field].strip()
        except ValueError:
            bad_line(path, raw, number, "the item id is not an integer", hint)
    return titles
