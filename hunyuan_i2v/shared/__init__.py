"""What both model families use: model files, tokenizers, LoRA files, acceleration hooks, images, video files."""
