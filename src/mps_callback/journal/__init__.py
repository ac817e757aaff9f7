"""Journal: every accepted notification, redacted, committed before the 200 goes back."""
