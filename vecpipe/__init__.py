"""vecpipe: composable Unix-style commands for word vectors and sentence embeddings."""

__version__ = "0.1.0"
