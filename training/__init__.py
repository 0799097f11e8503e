"""Training for the project's model: data checks, the pipeline, and the model folder.

`python -m training` is the command line (see `training/__main__.py`); the API reads
model folders with `training.artifacts.load_model`.
"""
