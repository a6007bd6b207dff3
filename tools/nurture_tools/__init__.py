"""Nurture's tooling, never shipped to Lambda: the `nurture` command, the local stack and the demo, the
report and export, the dashboard generator."""
