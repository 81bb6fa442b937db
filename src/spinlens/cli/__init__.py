"""The `spinlens` command line. Each command lives in its own module ``spinlens.cli.<name>``."""
