"""Shared by the benchmark scripts (run as files, so this folder is on sys.path)."""

# Code prepended to a `python -c` child that reports its own peak memory.
# VmHWM, not ru_maxrss: a child's ru_maxrss starts from its parent's high-water mark.
PEAK_RSS = "def peak_rss():\n    return int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]) * 1024\n"
