"""Files the application ships (sample image, icons); see CREDITS.md."""
