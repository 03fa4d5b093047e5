"""The course: checked exercises for the notebooks, and saved sessions."""
