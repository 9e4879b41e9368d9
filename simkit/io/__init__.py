"""HDF5 input/output: run writers (stores), one-shot result files, checkpoints, summaries."""

from ._attrs import fingerprint as fingerprint
from ._checkpoint import (
    checkpoint_path as checkpoint_path,
    load_checkpoint as load_checkpoint,
    save_checkpoint as save_checkpoint,
)
from ._hdf5 import (
    HDF5Store as HDF5Store,
    SaveGroup as SaveGroup,
    StoreError as StoreError,
    StoreWriteError as StoreWriteError,
    Variable as Variable,
)
from ._lock import WriterLock as WriterLock, WriterLockedError as WriterLockedError, lock_owner as lock_owner
from ._paths import add_output_arguments as add_output_arguments, output_path as output_path
from ._results import save_results as save_results, summarize as summarize
from ._store import FrameStore as FrameStore
from ._fields import (
    MEMBER_DIM as MEMBER_DIM,
    FieldStore as FieldStore,
    sidecar_path as sidecar_path,
)
from ._h5md import H5MDStore as H5MDStore
