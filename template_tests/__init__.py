"""Tests and tools of the template repository itself; not copied into projects."""
