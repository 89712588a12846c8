"""Every reader against systematic damage: each mutation of a line (fields, ids, ratings, dates, encodings, line
ends) is either read correctly or refused with one paragraph that names the file and the line, never a traceback.
The run files get the same treatment in test_trained_model.py and below."""

import random

import numpy as np
import pytest

import data_processor
from datasets import own_csv
from conftest import write_ml10m, write_ml100k, write_ml20m, write_movielens, write_netflix
from test_own_data import write_own_ratings

# Each format: (how to write it, its ratings file, field separator, how load_data reads it).
FORMATS = {
    "ml-100k": (write_ml100k, "u.data", "\t"),
    "ml-1m": (write_movielens, "ratings.dat", "::"),
    "ml-10m": (write_ml10m, "ratings.dat", "::"),
    "ml-20m": (write_ml20m, "ratings.csv", ","),
    "netflix": (write_netflix, "combined_data_1.txt", ","),
    "csv": (lambda folder: write_own_ratings(folder)[0].parent, "ratings.csv", ","),
}

# Mutations of one line's fields (a list of text fields) or of its text; None where it does not apply.
FIELD_MUTATIONS = {
    "field dropped": lambda fields: fields[:-1],
    "field added": lambda fields: fields + ["7"],
    "first field emptied": lambda fields: [""] + fields[1:],
    "id not a number": lambda fields: ["x" + fields[0]] + fields[1:],
    "id beyond 64 bits": lambda fields: ["9" * 25] + fields[1:],
    "id negative": lambda fields: ["-" + fields[0]] + fields[1:],
    "rating NA": lambda fields: fields[:2] + ["NA"] + fields[3:],
    "rating empty": lambda fields: fields[:2] + [""] + fields[3:],
    "rating too high": lambda fields: fields[:2] + ["99"] + fields[3:],
    "rating inf": lambda fields: fields[:2] + ["inf"] + fields[3:],
    "date garbage": lambda fields: fields[:-1] + ["2005-13-45" if "-" in fields[-1] else "soon"],
}
TEXT_MUTATIONS = {
    "latin-1 byte": lambda line: line + "\xe9",
    "blank line": lambda line: "",
    "CRLF line end": lambda line: line + "\r",
    "stray quote": lambda line: '"' + line,
    "whitespace after": lambda line: line + " ",
}


def rating_lines(text, dataset):
    """Indices of the lines that hold a rating (not a header, not a Netflix 'MovieID:' line)."""
    lines = text.splitlines()
    first = 1 if dataset in ("ml-20m", "csv") else 0
    return [index for index in range(first, len(lines)) if not lines[index].endswith(":")]


def mutate(folder, dataset, mutation, line_index):
    _, file_name, separator = FORMATS[dataset]
    path = folder / file_name
    lines = path.read_text(encoding="latin-1").splitlines()
    if mutation in FIELD_MUTATIONS:
        fields = lines[line_index].split(separator)
        if dataset == "netflix":  # CustomerID,Rating,Date: the rating is the second field
            fields = [fields[0], "", *fields[1:]]
            fields = FIELD_MUTATIONS[mutation](fields)
            fields = [fields[0], *fields[2:]] if len(fields) > 1 and fields[1] == "" else fields
        else:
            fields = FIELD_MUTATIONS[mutation](fields)
        lines[line_index] = separator.join(fields)
    else:
        lines[line_index] = TEXT_MUTATIONS[mutation](lines[line_index])
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return path


def load(dataset, folder):
    if dataset == "csv":
        return data_processor.load_data("csv", options=own_csv.CsvFormat(str(folder / "ratings.csv")))
    return data_processor.load_dataset(dataset, folder)


@pytest.mark.parametrize("dataset", list(FORMATS))
@pytest.mark.parametrize("mutation", [*FIELD_MUTATIONS, *TEXT_MUTATIONS])
def test_every_mutation_is_read_or_named(tmp_path, dataset, mutation):
    writer, file_name, _ = FORMATS[dataset]
    folder = writer(tmp_path / dataset)
    original = load(dataset, folder)
    candidates = rating_lines((folder / file_name).read_text(encoding="latin-1"), dataset)
    line_index = random.Random(f"{dataset}/{mutation}").choice(candidates[1:])  # never the first: it sets layouts
    path = mutate(folder, dataset, mutation, line_index)
    try:
        data = load(dataset, folder)
    except data_processor.DataError as error:
        message = str(error)
        assert path.name in message and "Fix:" in message, message
        assert f"line {line_index + 1}" in message, message
        assert "\n" not in message.split("Fix:")[0], "one paragraph"
        return
    # Read: then it must be the same ratings (a harmless change) or the changed line read as written.
    assert len(data.ratings) == len(original.ratings), mutation
    assert np.isfinite(data.ratings).all()
    low, high, _ = data.scale
    assert ((data.ratings >= low) & (data.ratings <= high)).all()
