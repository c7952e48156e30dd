"""What every stage runs on: the pfs directory of a datum, atomic file writes, child
processes, and the one place that turns tilefarm's errors into exit codes."""
