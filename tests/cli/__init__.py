"""The kakin command line and its refusals of bad settings."""
