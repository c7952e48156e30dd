"""The merger stage: one datum per frame; assembles its tiles and runs the output stage once."""
