"""HunyuanVideo-1.5 image-to-video."""
