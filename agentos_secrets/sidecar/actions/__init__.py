"""What the sidecar does when a change is confirmed: one module per ``--action``."""
