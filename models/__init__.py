"""Pure PyTorch + numpy model code for CV Playground. Nothing below this package imports gradio."""
