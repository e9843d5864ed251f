"""vecpipe.core: all the logic; no click, no printing to stdout, no sys.exit."""
