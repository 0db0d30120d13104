"""The data layer: label sets, the score-table schema and its arrays, uncertainty measures, folds and
splits, importers of other tools' tables, corpus parsers and the synthetic score generator."""
