"""vitexplorer: see what every attention head of a Vision Transformer looks at."""

__version__ = "0.1.0"
