"""The traffic simulator: seeded, realistic corridor events for demos, `corridor run` and tests."""
