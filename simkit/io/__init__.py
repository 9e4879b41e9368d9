"""HDF5 input/output: frame stores for runs, one-shot result files, checkpoints, summaries."""

from ._attrs import fingerprint as fingerprint
from ._checkpoint import (
    checkpoint_path as checkpoint_path,
    load_checkpoint as load_checkpoint,
    save_checkpoint as save_checkpoint,
)
from ._paths import add_output_arguments as add_output_arguments, output_path as output_path
from ._results import save_results as save_results, summarize as summarize
from ._store import FrameStore as FrameStore, StoreError as StoreError, Variable as Variable
