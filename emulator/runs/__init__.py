"""Runs of emu as other processes see them: the label names, finding and removing what a run
left, the running `emu up`s, and the reaper."""
