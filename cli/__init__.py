"""vecpipe.cli: thin click commands over vecpipe.core."""
