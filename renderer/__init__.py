"""The renderer stage: one datum per task; renders its frames as raw multilayer EXR tiles."""
