"""The data sets the program reads, one format a module; this table is all the rest of the program knows of them.

A new format is a module here, with a reader and a DATASETS dict of DataSet records (datasets/source.py), and its
line in FORMATS below (docs/data.md, "Adding a format"). The modules import no pandas or scipy at module level, so
that the command lines answer --help at once.
"""

from datasets import movielens, netflix, own_csv

FORMATS = [movielens, netflix, own_csv]
DATASETS = {name: description for module in FORMATS for name, description in module.DATASETS.items()}
