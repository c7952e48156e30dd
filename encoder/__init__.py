"""The encoder stage: one datum per job; turns its final frames into a video with ffmpeg."""
