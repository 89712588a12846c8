"""What the data layer knows of a data set, in one record per data set, which its format's module fills in."""

import dataclasses
from typing import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class DataSet:
    """One data set: where it comes from and how it is verified, the file that marks it present, its rating scale,
    how it is read, the protocols of its own and its line in --help."""
    read: Callable  # read(data_dir, options) -> Read: every line validated, ids as in the file
    scale: tuple | None  # (lowest, highest, step); None: the reader finds it (your own file)
    help: str  # one line for --help
    folder: str | None = None  # its folder under data/; None: a file named by the run's configuration
    url: str | None = None  # the zip that holds it; None: never downloaded
    checksum: str | None = None  # the zip's SHA-256 (64 hex digits) or MD5 (32); None: the MD5 published beside it
    ratings_file: str | None = None  # the file that marks the data set present
    environment: str | None = None  # an environment variable that names its folder
    present: Callable | None = None  # present(data_dir) -> bool, where no single file marks it
    missing_help: str = ""  # how to get it where it cannot be downloaded
    splits: dict = dataclasses.field(default_factory=dict)  # protocols of its own: name -> split(data, seed)
    splits_name: str = ""  # what its own splits are called, for messages
    time_split: Callable | None = None  # time_split(data, seed, window) -> Split, in place of the generic one
    time_windows: tuple = ()  # the windows its time_split knows besides 'full'
    options: Callable = lambda config: None  # what read() needs of a run's configuration (a file's layout)


@dataclasses.dataclass
class Read:
    """A reader's result: aligned arrays of the ratings as the files hold them (original ids), the titles
    ({item id: title}), the scale, the folder, the files read (their checksums are recorded), and `lines`: (the
    ratings file, the line of its first rating, the fix) to name a repeated rating's lines, or None."""
    user_ids: np.ndarray
    item_ids: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray | None
    titles: dict
    scale: tuple
    data_dir: object
    files: list
    lines: tuple | None
