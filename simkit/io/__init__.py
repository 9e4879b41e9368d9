"""HDF5 input/output: run writers (stores), one-shot result files, checkpoints, summaries."""

from ._attrs import fingerprint as fingerprint
from ._checkpoint import (
    checkpoint_path as checkpoint_path,
)
from ._checkpoint import (
    load_checkpoint as load_checkpoint,
)
from ._checkpoint import (
    save_checkpoint as save_checkpoint,
)
from ._fields import (
    MEMBER_DIM as MEMBER_DIM,
)
from ._fields import (
    FieldStore as FieldStore,
)
from ._fields import (
    sidecar_path as sidecar_path,
)
from ._h5md import H5MDStore as H5MDStore
from ._hdf5 import (
    HDF5Store as HDF5Store,
)
from ._hdf5 import (
    SaveGroup as SaveGroup,
)
from ._hdf5 import (
    StoreError as StoreError,
)
from ._hdf5 import (
    StoreWriteError as StoreWriteError,
)
from ._hdf5 import (
    Variable as Variable,
)
from ._lock import (
    WriterLock as WriterLock,
)
from ._lock import (
    WriterLockedError as WriterLockedError,
)
from ._lock import (
    lock_owner as lock_owner,
)
from ._paths import add_output_arguments as add_output_arguments
from ._paths import output_path as output_path
from ._results import save_results as save_results
from ._results import summarize as summarize
from ._store import FrameStore as FrameStore
