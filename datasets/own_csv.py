"""Your own ratings (--dataset csv): one rating per line (user, item, rating and optionally a time) in a text file
of any separator, with or without a header line; ids may be any text (u-17, ISBNs, e-mail hashes) and are kept
as text; an optional titles file labels the items. The layout comes from the run's configuration (CsvFormat)."""

import csv
import dataclasses
import io
import re
from pathlib import Path

import numpy as np

from datasets.lines import DataError, bad_line, check_field_counts, read_bytes
from datasets.source import DataSet, Read


@dataclasses.dataclass
class CsvFormat:
    """How a ratings file of one's own is laid out (main.py's RATINGS_FILE ... TITLES_FILE)."""
    ratings_file: str
    columns: str = ""  # user,item,rating[,timestamp] by header name or position from 1; '': the first fields
    separator: str = "auto"  # 'auto': the first of AUTO_SEPARATORS in the first line
    header: str = "auto"  # 'yes', 'no', or 'auto': a first line whose rating field is not a number is a header
    rating_scale: list | None = None  # [low, high] (whole steps) or [low, high, step] (0: any value); None: inferred
    titles_file: str | None = None  # optional: item id and title per line, same separator

    @classmethod
    def of(cls, config):
        """The layout a run's configuration names."""
        return cls(*(config[field.name] for field in dataclasses.fields(cls)))


AUTO_SEPARATORS = ["::", "\t", ",", ";", "|", " "]
CSV_ROLES = ["user", "item", "rating", "timestamp"]
CSV_HINT = "describe the file's layout with --columns, --separator, --header and --rating-scale (main.py --help)"


def read_csv_ratings(form):
    """(user ids, item ids, ratings, timestamps or None, titles, scale, header lines) of a ratings file of one's
    own, every line validated (file, line, text, fix)."""
    path = Path(form.ratings_file).expanduser()
    if not path.exists():
        raise DataError(f"{path} not found. Fix: give your ratings file with --ratings-file PATH (or RATINGS_FILE "
                        f"in main.py).")
    original = read_bytes(path, "give the text file that holds your ratings, one per line (user, item, rating), with "
                                "--ratings-file")
    encoding = text_encoding(path, original)
    first_line = original[: original.index(b"\n")].decode(encoding).rstrip("\r")
    separator = detect_separator(path, first_line) if form.separator == "auto" else form.separator
    raw, sep = (original.replace(b"::", b"\x1f"), "\x1f") if separator == "::" else (original, separator)
    header_fields = [field.strip() for field in (next(csv.reader([first_line], delimiter=separator))
                                                 if len(separator) == 1 else first_line.split(separator))]
    positions = csv_positions(path, form.columns, header_fields)
    header = csv_header(form.header, form.columns, header_fields, positions[2])
    if header and original.count(b"\n") == 1:
        raise DataError(f"{path} holds a header line and no ratings. Fix: give the file with your ratings, one "
                        f"per line after the header.")
    if b'"' not in raw:  # quoted fields may hold the separator: pandas checks those files' field counts instead
        check_field_counts(path, original, raw, sep, len(header_fields), len(header_fields),
                           [CSV_ROLES[positions.index(n)] if n in positions else "unused" for n in
                            range(len(header_fields))], CSV_HINT, first_line=2 if header else 1)
    frame = parse_csv(path, original, raw, sep, positions, header, encoding)
    columns = [frame[position].fillna("").to_numpy() for position in positions]
    columns[:2] = [ids.astype(str) for ids in columns[:2]]

    def bad(row, problem):
        bad_line(path, original, row + (2 if header else 1), problem, CSV_HINT)

    ratings, scale = csv_rating_values(columns[2], form.rating_scale, bad)
    if ratings.min() == ratings.max():
        raise DataError(f"{path}: every rating is {ratings[0]:g}, so there is nothing to predict (interactions such as "
                        f"clicks or purchases rather than ratings?). Fix: give ratings of at least two levels.")
    for role, ids in zip(CSV_ROLES, columns[:2]):
        if (ids == "").any():
            bad(int(np.argmax(ids == "")), f"the {role} id is missing")
    timestamps = csv_timestamps(columns[3], bad) if len(columns) == 4 else None
    titles = read_csv_titles(form.titles_file, separator, encoding) if form.titles_file else {}
    return columns[0], columns[1], ratings, timestamps, titles, scale, 1 if header else 0


def parse_csv(path, original, raw, sep, positions, header, encoding):
    """The chosen columns as text (the rating column as numbers where every rating is one); an error pandas finds
    in a quoted file names its line."""
    import pandas as pd

    options = dict(sep=sep, header=None, skiprows=1 if header else 0, usecols=positions, keep_default_na=False,
                   skip_blank_lines=False, skipinitialspace=True, encoding=encoding, index_col=False)
    try:  # ratings read as numbers at once; a value that is not one is found later, on the text
        return pd.read_csv(io.BytesIO(raw), dtype={**{position: str for position in positions},
                                                   positions[2]: np.float64}, **options)
    except ValueError:
        pass
    try:
        return pd.read_csv(io.BytesIO(raw), dtype=str, **options)
    except (pd.errors.ParserError, ValueError) as error:  # pandas counts "in line" from 1, "at row" from 0
        where = re.search(r"(in line|at row) (\d+)", str(error))
        if where:
            problem = str(error).split("C error: ")[-1].strip().rstrip(".")
            bad_line(path, original, int(where.group(2)) + (where.group(1) == "at row"), problem, CSV_HINT)
        raise DataError(f"{path} could not be read with separator {sep!r}: {error}. Fix: {CSV_HINT}.") from None


def is_utf8(raw):
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def text_encoding(path, raw):
    """'utf-8', or 'latin-1' for a file with no UTF-8 character at all. A file that is UTF-8 but for a few bytes
    (some of its non-ASCII characters valid UTF-8, some not) is refused at the first bad line, rather than read as
    latin-1 with every other character garbled."""
    if is_utf8(raw):
        return "utf-8"
    non_ascii = re.findall(rb"[\x80-\xff]+", raw)
    if not any(is_utf8(run) for run in non_ascii):
        return "latin-1"
    lines = raw.split(b"\n")
    number = next(number for number, line in enumerate(lines, start=1) if not is_utf8(line))
    bad_line(path, raw, number, "bytes that are not UTF-8, in a file that is otherwise UTF-8", "re-save the file "
             "as UTF-8 (or wholly as latin-1)")


def detect_separator(path, first_line):
    """The first of AUTO_SEPARATORS that splits line 1 into 3 fields or more (so that the decimal comma of
    'u1;i1;4,5' is not taken for one), else the first in it."""
    present = [separator for separator in AUTO_SEPARATORS if separator in first_line]
    for separator in present:
        if len(first_line.split(separator)) >= 3:
            return separator
    if present:
        return present[0]
    raise DataError(f"{path}, line 1: no separator found ({', '.join(map(repr, AUTO_SEPARATORS))}): "
                    f"{first_line!r}. Fix: give it with --separator.")


def csv_positions(path, columns, header_fields):
    """The 0-based positions of the user, item, rating (and timestamp) fields."""
    if not columns:
        if len(header_fields) < 3:
            raise DataError(f"{path}, line 1: {len(header_fields)} field(s), where a ratings file has a user, an item "
                            f"and a rating on each line (and may have a timestamp). Fix: give the ratings with "
                            f"the ids (this program predicts ratings, not interactions), or --separator.")
        return list(range(min(len(header_fields), 4)))
    names = [name.strip() for name in str(columns).split(",")]
    repeated = [name for position, name in enumerate(names) if name in names[:position]]
    if repeated:
        raise DataError(f"--columns {columns!r} names the column {repeated[0]!r} twice. Fix: name the user, item and "
                        f"rating columns (and a timestamp column) once each, e.g. --columns userId,movieId,rating.")
    if not 3 <= len(names) <= 4:
        raise DataError(f"--columns {columns!r} names {len(names)} columns. Fix: name the user, item and rating "
                        f"columns (and a timestamp column), e.g. --columns userId,movieId,rating,timestamp or 1,2,3.")
    if all(name.isdigit() for name in names):
        positions = [int(name) - 1 for name in names]
        wrong = [name for name, position in zip(names, positions) if not 0 <= position < len(header_fields)]
        if wrong:
            raise DataError(f"--columns {columns!r}: line 1 of {path} has {len(header_fields)} fields, no field "
                            f"{wrong[0]}. Fix: count the fields from 1.")
        return positions
    missing = [name for name in names if name not in header_fields]
    if missing:
        raise DataError(f"--columns {columns!r}: {path} has no column {missing[0]!r} in its header line (it has "
                        f"{', '.join(map(repr, header_fields))}). Fix: use those names, or positions from 1.")
    return [header_fields.index(name) for name in names]


def csv_header(setting, columns, header_fields, rating_position):
    """Whether line 1 is a header: --header yes/no, or (auto) if columns are named or its rating is not a number."""
    import pandas as pd

    if setting != "auto":
        return setting == "yes"
    named = bool(columns) and not all(name.strip().isdigit() for name in str(columns).split(","))
    return named or pd.isna(pd.to_numeric(decimal_points([header_fields[rating_position]])[0], errors="coerce"))


def csv_rating_values(text, rating_scale, bad):
    """The ratings as float32 and the scale (given, or inferred and printed); a value that is not a number or off
    the scale names its line."""
    import pandas as pd

    if text.dtype.kind in "iuf":
        values = text.astype(np.float64)
    else:
        values = pd.to_numeric(decimal_points(text), errors="coerce").to_numpy(dtype=np.float64)
    not_number = ~np.isfinite(values)
    if not_number.any():
        row = int(np.argmax(not_number))
        bad(row, f"rating {str(text[row])!r} is not a number" if text[row] else "the rating is missing")
    if rating_scale:
        low, high, step = (list(rating_scale) + [1.0])[:3]  # low,high: whole steps
    else:
        low, high = float(values.min()), float(values.max())
        steps = {step: (values - low) / step for step in (1.0, 0.5)}
        step = next((step for step, count in steps.items() if np.allclose(count, np.round(count))), 0.0)
        print(f"Rating scale inferred from the ratings: {scale_text((low, high, step))} (--rating-scale sets it)")
    off = (values < low) | (values > high)
    if step:  # steps counted from the lowest rating: 1,10,1.5 takes 1, 2.5, 4, ...
        steps = (values - low) / step
        off |= np.abs(steps - np.round(steps)) > 1e-6
    if off.any():
        row = int(np.argmax(off))
        bad(row, f"rating {values[row]:g} is off the scale {scale_text((low, high, step))} (--rating-scale)")
    return values.astype(np.float32), (float(low), float(high), float(step))


def decimal_points(texts):
    """Numbers written with a decimal comma (4,5: a spreadsheet's export) written with a point instead."""
    import pandas as pd

    return pd.Series(texts).astype(str).str.replace(r"^\s*([+-]?\d+),(\d+)\s*$", r"\1.\2", regex=True)


def scale_text(scale):
    low, high, step = scale
    return (f"{low:g}-{high:g}" if low >= 0 else f"{low:g} to {high:g}") + (
        f" in steps of {step:g}" if step else " (any value)")


def csv_timestamps(text, bad):
    """Seconds since 1970 from numbers (seconds) or ISO 8601 dates and times; line 1's kind decides for all."""
    import pandas as pd

    if not np.isnan(pd.to_numeric(text[:1], errors="coerce")[0]):
        numbers = pd.to_numeric(pd.Series(text), errors="coerce")
        wrong = numbers.isna().to_numpy()
        kind = "a number of seconds, as on the first line"
        seconds = numbers.to_numpy()
    else:
        dates = pd.to_datetime(pd.Series(text), format="ISO8601", errors="coerce", utc=True)
        wrong = dates.isna().to_numpy()
        kind = "an ISO date such as 2024-05-17 or 2024-05-17T09:30:00, as on the first line"
        seconds = (dates.dt.tz_localize(None).to_numpy().astype("datetime64[s]").astype(np.int64)
                   if not wrong.any() else None)
    if wrong.any():
        row = int(np.argmax(wrong))
        bad(row, f"timestamp {str(text[row])!r} is not {kind}" if text[row] else "the timestamp is missing")
    return np.asarray(seconds, dtype=np.float64).round().astype(np.int64)


def read_csv_titles(path, separator, encoding):
    """{item id: title} from lines 'item id<separator>title' (quotes allowed); lines whose id is not an item of
    the ratings (a header line among them) are ignored."""
    path = Path(path).expanduser()
    hint = "give a file of 'item id, title' lines with --titles-file, or leave it out"
    raw = read_bytes(path, hint)
    lines = raw.decode("utf-8" if is_utf8(raw) else "latin-1").split("\n")[:-1]
    rows = (csv.reader(lines, delimiter=separator) if len(separator) == 1
            else (line.rstrip("\r").split(separator, 1) for line in lines))
    titles = {}
    for number, row in enumerate(rows, start=1):
        if len(row) < 2:
            bad_line(path, raw, number, f"{len(row)} field where 2 (item id, title) are expected, separated by "
                                        f"{separator!r}", hint)
        titles[row[0].strip()] = separator.join(row[1:]).strip()
    return titles


def read(data_dir, form):
    """The ratings file that `form` (a CsvFormat) describes, and its titles file."""
    path = Path(form.ratings_file).expanduser().resolve()
    users, items, ratings, timestamps, titles, scale, header_lines = read_csv_ratings(form)
    files = [path] + ([Path(form.titles_file).expanduser().resolve()] if form.titles_file else [])
    return Read(users, items, ratings, timestamps, titles, scale, path.parent, files,
                (path, header_lines + 1, CSV_HINT))


DATASETS = {"csv": DataSet(read, None, "your own ratings file (--ratings-file; docs/own-data.md)",
                           options=CsvFormat.of)}
